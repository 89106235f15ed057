// Where the app finds the auth service. Empty: the origin that serves this page. A frontend on another host of the
// same site serves its own copy naming the service, e.g. `export const authBaseUrl = 'https://auth.example.com';`.
export const authBaseUrl = '';
