/**
 * pino JSON logs (pretty in `npm run dev`). Secrets never reach a log line: the paths below are
 * censored wherever they appear, URLs are logged with sensitive query values masked, and the
 * configuration is logged through `describeConfig` (credentials masked).
 */
import { pino, type DestinationStream, type Logger as PinoLogger, type LoggerOptions } from 'pino';
import { redactDeep, redactPii } from '../ai/guardrails/pii.js';
import { type Config, piiRedactionTargets } from '../config.js';

export type Logger = PinoLogger;

/** Keys whose values are secrets or personal data, at any of the first few levels of a log object. */
const SECRET_KEYS = [
  'password',
  'newPassword',
  'currentPassword',
  'passwordHash',
  'token',
  'accessToken',
  'refreshToken',
  'idToken',
  'apiKey',
  'secret',
  'clientSecret',
  'authorization',
  'cookie',
];

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  ...SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
];

/** Query-string parameters whose values are masked in logged URLs. */
const SENSITIVE_QUERY =
  /^(token|access_token|refresh_token|id_token|code|state|api_key|apikey|key|password|secret|client_secret)$/i;

/** `/x?token=abc&page=2` → `/x?token=[REDACTED]&page=2` */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return url;
  const params = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq === -1 ? pair : pair.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name);
      } catch {
        // keep the raw name
      }
      return eq !== -1 && SENSITIVE_QUERY.test(decoded) ? `${name}=[REDACTED]` : pair;
    });
  return `${url.slice(0, q)}?${params.join('&')}`;
}

/**
 * With `LARDER_PII_REDACTION` including `logs`: personal data and secrets (src/ai/guardrails/pii.ts)
 * are replaced by `[REDACTED:<kind>]` in every string of a log line — the message, its fields at any
 * depth and serialised errors. It costs a scan of each logged string, so it is opt-in.
 */
function piiOptions(enabled: boolean): Partial<LoggerOptions> {
  if (!enabled) return {};
  return {
    formatters: { log: (object: Record<string, unknown>) => redactDeep(object) },
    // The standard serializer returns an object with its own prototype: copy it to a plain one.
    serializers: { err: (error: Error) => redactDeep({ ...pino.stdSerializers.err(error) }) },
    hooks: {
      logMethod(args, method) {
        const redacted = args.map((arg: unknown) => (typeof arg === 'string' ? redactPii(arg).text : arg));
        method.apply(this, redacted as Parameters<typeof method>);
      },
    },
  };
}

export function createLogger(
  config: Pick<Config, 'logLevel' | 'logPretty'> & Partial<Pick<Config, 'piiRedaction'>>,
  destination?: DestinationStream,
): Logger {
  const options: LoggerOptions = {
    level: config.logLevel,
    base: { service: 'larder' },
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    ...piiOptions(piiRedactionTargets(config.piiRedaction ?? '').has('logs')),
  };
  if (destination) return pino(options, destination);
  if (config.logPretty && prettyAvailable()) {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } },
    });
  }
  return pino(options);
}

/** pino-pretty is a development dependency; without it (production images) logs stay JSON. */
function prettyAvailable(): boolean {
  try {
    import.meta.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}
