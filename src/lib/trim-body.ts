// preValidation hooks for JSON bodies: trimming named string fields, and optional bodies.
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

const optionalBodySchemas = new WeakSet<object>();

/**
 * Marks a body schema as optional (use with the `optionalBody` hook): an empty body parses as `{}` even when sent
 * as `application/json`, and the OpenAPI document says `requestBody.required: false`.
 */
export function optionalBodySchema<T extends object>(schema: T): T {
  optionalBodySchemas.add(schema);
  return schema;
}

export function isOptionalBodySchema(schema: unknown): boolean {
  return typeof schema === 'object' && schema !== null && optionalBodySchemas.has(schema);
}
