/**
 * Browser sessions without tokens in JavaScript-readable storage: the refresh token travels in an
 * HttpOnly cookie scoped to /v1/auth, the short-lived access token stays in the page's memory.
 *
 * Cookie-authenticated endpoints (refresh, logout) need CSRF protection, because browsers attach
 * cookies on their own: a double-submit token (the readable `larder_csrf` cookie echoed in the
 * `X-CSRF-Token` header, compared in constant time) plus SameSite=Strict on the refresh cookie.
 * Bearer-authenticated API routes are not exposed to CSRF (browsers never attach that header).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../platform/errors.js';

export const REFRESH_COOKIE = 'larder_refresh';
export const CSRF_COOKIE = 'larder_csrf';
export const CSRF_HEADER = 'x-csrf-token';
const REFRESH_PATH = '/v1/auth';

export interface CookieSettings {
  secure: boolean;
  refreshTtlSeconds: number;
}

export function setSessionCookies(reply: FastifyReply, refreshToken: string, settings: CookieSettings): void {
  const base = { secure: settings.secure, sameSite: 'strict' as const, maxAge: settings.refreshTtlSeconds };
  void reply.setCookie(REFRESH_COOKIE, refreshToken, { ...base, httpOnly: true, path: REFRESH_PATH });
  void reply.setCookie(CSRF_COOKIE, randomBytes(24).toString('base64url'), {
    ...base,
    httpOnly: false,
    path: '/',
  });
}

export function clearSessionCookies(reply: FastifyReply, settings: Pick<CookieSettings, 'secure'>): void {
  void reply.clearCookie(REFRESH_COOKIE, {
    path: REFRESH_PATH,
    secure: settings.secure,
    sameSite: 'strict',
    httpOnly: true,
  });
  void reply.clearCookie(CSRF_COOKIE, { path: '/', secure: settings.secure, sameSite: 'strict' });
}

/** The refresh token from the cookie, after the CSRF check; null when the request has no session cookie. */
export function refreshTokenFromCookie(request: FastifyRequest): string | null {
  const token = request.cookies[REFRESH_COOKIE];
  if (!token) return null;
  const cookie = request.cookies[CSRF_COOKIE] ?? '';
  const header = request.headers[CSRF_HEADER];
  const sent = typeof header === 'string' ? header : '';
  const a = Buffer.from(cookie);
  const b = Buffer.from(sent);
  if (a.length === 0 || a.length !== b.length || !timingSafeEqual(a, b)) {
    throw new AppError('forbidden', {
      detail: 'Missing or wrong X-CSRF-Token (send the larder_csrf cookie’s value)',
    });
  }
  return token;
}
