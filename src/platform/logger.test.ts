import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, stream };
}

describe('PII redaction in logs', () => {
  const line = (logger: ReturnType<typeof createLogger>) => {
    logger.info(
      { user: { email: 'jane.doe@example.com', notes: ['card 4111 1111 1111 1111'] }, count: 3 },
      'question from jane.doe@example.com about IBAN DE89 3704 0044 0532 0130 00',
    );
    logger.error(
      { err: new Error('upstream refused key sk-proj-abcdefghijklmnopqrstuvwxyz012345') },
      'failed',
    );
  };

  it('redacts the message, nested fields and error messages when enabled', () => {
    const { lines, stream } = capture();
    line(createLogger({ logLevel: 'info', logPretty: false, piiRedaction: 'logs' }, stream));
    const text = JSON.stringify(lines);
    expect(text).not.toContain('jane.doe@example.com');
    expect(text).not.toContain('4111 1111 1111 1111');
    expect(text).not.toContain('DE89');
    expect(text).not.toContain('sk-proj-abcdefghijklmnopqrstuvwxyz012345');
    expect(lines[0]).toMatchObject({
      msg: 'question from [REDACTED:email] about IBAN [REDACTED:iban]',
      user: { email: '[REDACTED:email]', notes: ['card [REDACTED:card]'] },
      count: 3,
    });
    expect((lines[1]!.err as { message: string; type: string }).message).toContain('[REDACTED:secret]');
    expect((lines[1]!.err as { type: string }).type).toBe('Error');
  });

  it('leaves logs untouched when off (the default) or set for other targets only', () => {
    for (const piiRedaction of [undefined, '', 'storage,provider']) {
      const { lines, stream } = capture();
      line(createLogger({ logLevel: 'info', logPretty: false, piiRedaction }, stream));
      expect(JSON.stringify(lines)).toContain('jane.doe@example.com');
    }
  });
});
