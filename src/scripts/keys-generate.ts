// `npm run keys:generate`: the former name of keys:rotate, kept so existing runbooks still work.
import './keys-rotate.js';
