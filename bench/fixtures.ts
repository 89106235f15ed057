// Users and sessions for the scenarios, made through the service's own public routes before any measurement.
// A handful of requests at a time: argon2id runs on the service's four libuv threads, so more would only queue.

export const PASSWORD = 'correct horse battery staple';
const PARALLEL = 4;

export interface BenchUser {
  email: string;
}

export interface LoginResult {
  accessToken: string;
  refreshToken: string;
}

/** A domain of our own: seeded rows (bench/seed.ts) never collide with these users. */
export const benchUser = (index: number): BenchUser => ({ email: `runner-${index}@bench-runner.example.com` });

export const loginBody = (user: BenchUser) => JSON.stringify({ email: user.email, password: PASSWORD });
export const refreshBody = (refreshToken: string) => JSON.stringify({ refreshToken });

async function post(origin: string, path: string, body: string, expected: number): Promise<unknown> {
  const response = await fetch(`${origin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  if (response.status !== expected) throw new Error(`POST ${path}: ${response.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** Runs `task` over `items`, PARALLEL at a time, keeping the order of the results. */
async function inParallel<T, R>(items: T[], task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
  return results;
}

export async function registerUsers(origin: string, count: number): Promise<BenchUser[]> {
  const users = Array.from({ length: count }, (_, i) => benchUser(i));
  await inParallel(users, (user) =>
    post(origin, '/auth/register', JSON.stringify({ email: user.email, password: PASSWORD, name: 'Bench' }), 201),
  );
  return users;
}

/** One login per entry: each is a new session of that user. */
export async function login(origin: string, users: BenchUser[]): Promise<LoginResult[]> {
  return inParallel(users, async (user) => {
    const answer = (await post(origin, '/auth/login', loginBody(user), 200)) as Partial<LoginResult>;
    if (typeof answer.accessToken !== 'string' || typeof answer.refreshToken !== 'string') {
      throw new Error(`POST /auth/login: no tokens in the answer for ${user.email}`);
    }
    return { accessToken: answer.accessToken, refreshToken: answer.refreshToken };
  });
}

/** Fails fast, with the answer, when a route does not accept what the scenario will send it. */
export async function expectOk(url: string, init: RequestInit, what: string): Promise<void> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: ${response.status} ${text.slice(0, 300)}`);
}
