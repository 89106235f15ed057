// Outgoing mail: SMTP when SMTP_URL is set, else the development outbox (DATA_DIR/outbox), behind one queue that
// delivers after the response. Closed before the database, so a delivery given up at shutdown can still void its token.
import path from 'node:path';
import fp from 'fastify-plugin';
import { DEFAULT_RETRY_DELAYS_MS, MailQueue } from '../mail/mail-queue.js';
import { outboxTransport, smtpTransport } from '../mail/transport.js';

declare module 'fastify' {
  interface FastifyInstance {
    mail: MailQueue;
  }
}

export interface MailPluginOptions {
  retryDelaysMs?: readonly number[];
}

export default fp<MailPluginOptions>(
  async (app, options) => {
    const { smtpUrl, from } = app.config.mail;
    const outbox = path.resolve(app.config.dataDir, 'outbox');
    const transport = smtpUrl ? smtpTransport(smtpUrl, from) : outboxTransport(outbox, from, app.log);
    if (!smtpUrl) {
      app.log.warn(
        { outbox },
        '************ NO SMTP_URL: MAIL IS WRITTEN TO THE OUTBOX FOLDER, NOT SENT (development only) ************',
      );
    }
    const queue = new MailQueue(transport, app.log, options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS);
    app.decorate('mail', queue);
    app.addHook('onClose', () => queue.close());
  },
  { name: 'mail', dependencies: ['config'] },
);
