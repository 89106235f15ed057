// /reset-password?token=T: sets a new password with the token of a reset mail; the service then ends every session.
import { describe, formValues, INVALID_LINK, linkRequestForm, postJson, say, takeToken, whileBusy } from '/account.js';

const $ = (selector) => document.querySelector(selector);
const token = takeToken();
const resetForm = $('#reset-form');
const requestForm = $('#request-form');
linkRequestForm(requestForm, '/auth/password-reset/request');

function askForNewLink(message) {
  resetForm.hidden = true;
  requestForm.hidden = false;
  say(`${message} You can ask for a new one below.`, 'error');
  requestForm.querySelector('input').focus();
}

const confirmation = resetForm.elements.namedItem('confirmPassword');
// A mismatch is a validation error of the form itself, announced like the browser's own ones.
confirmation.addEventListener('input', () => confirmation.setCustomValidity(''));

resetForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const { newPassword, confirmPassword } = formValues(resetForm);
  if (newPassword !== confirmPassword) {
    confirmation.setCustomValidity('The two passwords differ.');
    confirmation.reportValidity();
    say('The two passwords differ: type the same new password twice.', 'error');
    return;
  }
  whileBusy(resetForm, async () => {
    try {
      await postJson('/auth/password-reset', { token, newPassword });
      resetForm.reset();
      resetForm.hidden = true;
      $('#reset-done').hidden = false;
      say('Password changed.');
      $('#login-link').focus();
    } catch (error) {
      if (error?.code === 'ACTION_TOKEN_INVALID') askForNewLink(INVALID_LINK);
      else say(describe(error), 'error');
    }
  });
});

if (token) {
  resetForm.hidden = false;
  resetForm.elements.namedItem('newPassword').focus();
} else {
  askForNewLink('This link is incomplete: open the link from the mail again.');
}
document.body.dataset.ready = 'true';
