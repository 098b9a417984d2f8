/**
 * Built-in maintenance: removes credentials that can no longer be used. Runs daily on the worker
 * (cron, UTC) and can be enqueued by hand. Idempotent: running it twice deletes nothing more.
 */
import Type from 'typebox';
import { defineJob } from '../../platform/jobs/define.js';
import { purgeExpired } from './repository.js';

/** Expired rows are kept this long for investigation (e.g. refresh-token reuse) before deletion. */
export const RETENTION_DAYS = 7;

export const purgeExpiredJob = defineJob({
  name: 'maintenance.purge-expired',
  payload: Type.Object({ retentionDays: Type.Optional(Type.Integer({ minimum: 0, maximum: 3650 })) }),
  retry: { limit: 3, delaySeconds: 60, backoff: true },
  expireInSeconds: 10 * 60,
  schedule: '17 3 * * *',
  async handler(payload, ctx) {
    const result = await purgeExpired(ctx.deps.database.db, payload.retentionDays ?? RETENTION_DAYS);
    ctx.log.info(result, 'purged expired credentials');
    return result;
  },
});
