// Schema validation: JSON bodies are checked as sent (no type coercion: `"password": 12345678` is a 400), while
// query strings and path parameters, which are always text, are coerced to their schema's types.
// Every validator of a body, query string or path also refuses control characters in strings (contract Details,
// Strings): no route schema has to say so, and none can forget.

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

function makeAjv(coerceTypes: boolean | 'array'): Ajv {
  // Unknown properties are rejected (400), never silently stripped.
  const ajv = new Ajv({ removeAdditional: false, useDefaults: true, coerceTypes, allErrors: false, strict: false });
  addFormats.default(ajv);
  return ajv;
}

// C0 controls and DEL. A password may hold any of them but NUL: it is hashed, never stored or shown as text.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point.
const CONTROL = /[\u0000-\u001f\u007f]/;
const PASSWORD_FIELDS = new Set(['password', 'currentPassword', 'newPassword']);
const MAX_DEPTH = 32;

/** The JSON pointer of the first string (or key) holding a forbidden character, or undefined. */
function forbiddenCharacterAt(value: unknown, pointer: string, key: string, depth: number): string | undefined {
  if (typeof value === 'string') {
    const forbidden = PASSWORD_FIELDS.has(key) ? value.includes('\u0000') : CONTROL.test(value);
    return forbidden ? pointer : undefined;
  }
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return undefined;
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = forbiddenCharacterAt(item, `${pointer}/${index}`, key, depth + 1);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [name, item] of Object.entries(value)) {
    const escaped = name.replaceAll('~', '~0').replaceAll('/', '~1');
    if (CONTROL.test(name)) return `${pointer}/${escaped}`;
    const found = forbiddenCharacterAt(item, `${pointer}/${escaped}`, name, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Compiled on the route's first request, not at boot (most routes of a process never see one, and ajv's code
 * generation for all of them costs about a second of CPU at every start). `refuseControls`: the body, query string
 * and path are also checked for control characters first.
 */
function lazyValidator(compile: () => ValidateFunction, refuseControls: boolean): ValidateFunction {
  let validate: ValidateFunction | undefined;
  const wrapped = ((data: unknown) => {
    const instancePath = refuseControls ? forbiddenCharacterAt(data, '', '', 0) : undefined;
    if (instancePath !== undefined) {
      const error: ErrorObject = {
        instancePath,
        schemaPath: '#/controlCharacters',
        keyword: 'controlCharacters',
        params: {},
        message: 'must not contain control characters',
      };
      wrapped.errors = [error];
      return false;
    }
    validate ??= compile();
    const valid = validate(data);
    wrapped.errors = validate.errors;
    return valid;
  }) as ValidateFunction;
  return wrapped;
}

export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = makeAjv(false);
  const coercing = makeAjv('array');
  return ({ schema, httpPart }) =>
    lazyValidator(
      () => (httpPart === 'body' ? strict : coercing).compile(schema as object),
      httpPart === 'body' || httpPart === 'querystring' || httpPart === 'params',
    );
}
