// Response serializers compiled on a route's first answer, not at boot. fast-json-stringify generates code for every
// status of every route when the app starts (about a second of CPU, and the heap to hold it), though most routes of
// a process, and most statuses of a route, are never answered. The code generated is Fastify's own, only later.
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';

type SerializerFactory = ReturnType<typeof SerializerSelector>;

export function lazySerializerFactory(): SerializerFactory {
  const eagerFactory = SerializerSelector();
  return (externalSchemas, options) => {
    const compile = eagerFactory(externalSchemas, options);
    return (route) => {
      let serialize: ((doc: unknown) => string) | undefined;
      return (doc) => {
        serialize ??= compile(route);
        return serialize(doc);
      };
    };
  };
}
