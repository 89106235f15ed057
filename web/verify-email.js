// /verify-email?token=T: confirms the address the verification mail went to.
import { describe, INVALID_LINK, linkRequestForm, postJson, say, takeToken } from '/account.js';

const token = takeToken();
const requestForm = document.querySelector('#request-form');
linkRequestForm(requestForm, '/auth/verify-email/request');

async function verify() {
  if (!token) {
    say('This link is incomplete: open the link from the mail again, or ask for a new one below.', 'error');
    requestForm.hidden = false;
    return;
  }
  try {
    const { user } = await postJson('/auth/verify-email', { token });
    say(`Your email address is verified: ${user.email}.`);
  } catch (error) {
    const invalid = error?.code === 'ACTION_TOKEN_INVALID';
    say(invalid ? `${INVALID_LINK} You can ask for a new one below.` : describe(error), 'error');
    requestForm.hidden = !invalid;
  }
}

verify().finally(() => {
  document.body.dataset.ready = 'true';
});
