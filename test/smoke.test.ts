import t from 'tap';
import { buildTestApp } from './helpers/app.js';

t.test('the app builds on real Postgres and Redis and answers ready', async (t) => {
  const { app } = await buildTestApp(t);
  const response = await app.inject({ method: 'GET', url: '/health/ready' });
  t.equal(response.statusCode, 200);
  t.same(response.json(), { status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });
});
