// A preValidation hook that trims the named string fields of a JSON body, so the schema checks the trimmed value.
import type { FastifyRequest } from 'fastify';

export function trimBodyFields(...fields: string[]) {
  return async (request: FastifyRequest) => {
    const body = request.body as Record<string, unknown> | null;
    if (body === null || typeof body !== 'object') return;
    for (const field of fields) {
      const value = body[field];
      if (typeof value === 'string') body[field] = value.trim();
    }
  };
}

/** A preValidation hook for routes whose body is optional: no body at all validates as `{}`. */
export async function optionalBody(request: FastifyRequest): Promise<void> {
  request.body ??= {};
}
