// REDIS_URL (one server, or Sentinel) and REDIS_CLUSTER_NODES: the forms accepted, and the messages for bad ones.
import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config.js';

const config = (env: Record<string, string>) => loadConfig({ NODE_ENV: 'test', ...env });
function problemsOf(env: Record<string, string>): string[] {
  try {
    config(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

t.test('a single server', async (t) => {
  t.same(config({ REDIS_URL: 'rediss://:pw@cache:6380/2' }).redis, {
    mode: 'single',
    url: 'rediss://:pw@cache:6380/2',
  });
  t.equal(config({}).redis, undefined, 'unset: the embedded store');
});

t.test('sentinel URLs', async (t) => {
  t.same(config({ REDIS_URL: 'redis+sentinel://s1:26379,s2:26380,10.0.0.3/mymaster' }).redis, {
    mode: 'sentinel',
    sentinels: [
      { host: 's1', port: 26379 },
      { host: 's2', port: 26380 },
      { host: '10.0.0.3', port: 26379 },
    ],
    name: 'mymaster',
    tls: false,
  });
  t.same(
    config({ REDIS_URL: 'rediss+sentinel://app:p%40ss@[::1]:5000/m?sentinelPassword=s%3Dcret' }).redis,
    {
      mode: 'sentinel',
      sentinels: [{ host: '::1', port: 5000 }],
      name: 'm',
      username: 'app',
      password: 'p@ss',
      sentinelPassword: 's=cret',
      tls: true,
    },
    'credentials decoded, TLS, IPv6',
  );
  t.match(config({ REDIS_URL: 'redis+sentinel://:secret@s1/m' }).redis, { password: 'secret', tls: false });
  t.notOk('username' in (config({ REDIS_URL: 'redis+sentinel://:secret@s1/m' }).redis ?? {}), 'no empty username');
});

t.test('sentinel URLs: clear problems, never the password', async (t) => {
  const cases: [string, RegExp][] = [
    ['redis+sentinel://s1:26379,s2:26379', /master name is missing/],
    ['redis+sentinel://s1:26379,s2:26379/', /master name is missing/],
    ['redis+sentinel://:pw@s1:99999/m', /"s1:99999" is not host:port/],
    ['redis+sentinel://:pw@s1,,s2/m', /"" is not host:port/],
    ['redis+sentinel:///m', /no host given/],
    ['redis+sentinel://s1/m?password=x', /unknown parameter password/],
    ['redis+sentinel://:%zz@s1/m', /percent-encoding/],
  ];
  for (const [url, problem] of cases) {
    const problems = problemsOf({ REDIS_URL: url });
    t.equal(problems.length, 1, url);
    t.match(problems[0], /^REDIS_URL: /, `${url}: named`);
    t.match(problems[0], problem, `${url}: ${problems[0]}`);
    t.notMatch(problems[0], /pw|%zz/, 'the URL is not echoed');
  }
  t.match(problemsOf({ REDIS_URL: 'sentinel://s1/m' })[0], /REDIS_URL: expected a redis:\/\//, 'scheme');
});

t.test('cluster nodes', async (t) => {
  t.same(config({ REDIS_CLUSTER_NODES: 'n1:7000, n2:7001,n3' }).redis, {
    mode: 'cluster',
    nodes: [
      { host: 'n1', port: 7000 },
      { host: 'n2', port: 7001 },
      { host: 'n3', port: 6379 },
    ],
    tls: false,
  });
  t.same(config({ REDIS_CLUSTER_NODES: 'rediss://:s3cret@n1:7000,n2:7001' }).redis, {
    mode: 'cluster',
    nodes: [
      { host: 'n1', port: 7000 },
      { host: 'n2', port: 7001 },
    ],
    password: 's3cret',
    tls: true,
  });
  t.equal(config({ REDIS_CLUSTER_NODES: 'n1:7000' }).redisUrl, undefined, 'no REDIS_URL with a cluster');
});

t.test('cluster nodes: malformed, or in conflict with REDIS_URL', async (t) => {
  const cases: [string, RegExp][] = [
    ['n1:7000,n2:', /"n2:" is not host:port/],
    ['n1:7000;n2:7001', /"n1:7000;n2:7001" is not host:port/],
    ['redis://n1:7000/0', /expected host1:7000,host2:7001/],
    ['n1:0', /"n1:0" is not host:port/],
  ];
  for (const [nodes, problem] of cases) {
    const problems = problemsOf({ REDIS_CLUSTER_NODES: nodes });
    t.equal(problems.length, 1, nodes);
    t.match(problems[0], /^REDIS_CLUSTER_NODES: /, `${nodes}: named, not echoed`);
    t.match(problems[0], problem, `${nodes}: ${problems[0]}`);
  }
  const both = problemsOf({ REDIS_URL: 'redis://cache:6379', REDIS_CLUSTER_NODES: 'n1:7000' });
  t.match(both, [/REDIS_CLUSTER_NODES: set either REDIS_URL .* or REDIS_CLUSTER_NODES .*, not both/]);
});

t.test('production accepts a cluster instead of REDIS_URL', async (t) => {
  const production = { NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', SMTP_URL: 'smtp://mail:25' };
  t.notMatch(problemsOf({ ...production, REDIS_CLUSTER_NODES: 'n1:7000' }), [/REDIS/]);
  t.match(problemsOf(production), [/REDIS_URL: required \(or REDIS_CLUSTER_NODES\)/]);
});
