// /confirm-email?token=T: moves the account to the new address the confirmation mail went to.
import { describe, INVALID_LINK, postJson, say, takeToken } from '/account.js';

const token = takeToken();
const again = document.querySelector('#confirm-again');

async function confirm() {
  if (!token) {
    say('This link is incomplete: open the link from the mail again.', 'error');
    again.hidden = false;
    return;
  }
  try {
    const { user } = await postJson('/auth/email/confirm', { token });
    say(`Your email address is now ${user.email}. Use it to log in from now on.`);
  } catch (error) {
    say(error?.code === 'ACTION_TOKEN_INVALID' ? INVALID_LINK : describe(error), 'error');
    again.hidden = !['ACTION_TOKEN_INVALID', 'EMAIL_TAKEN'].includes(error?.code);
  }
}

confirm().finally(() => {
  document.body.dataset.ready = 'true';
});
