/**
 * Single sign-on with an OpenID Connect identity provider: authorization code flow with PKCE (S256),
 * `state` and `nonce`, provider metadata from discovery (`openid-client`).
 *
 * Who signs in, in this order:
 *  1. an identity already linked (`oidc_identities` by issuer + subject) → its user, whatever the
 *     email claim says today (the subject is the stable identifier, emails change);
 *  2. otherwise only a *verified* email (`email_verified === true`) is trusted:
 *     an account with that email → the identity is linked to it (no second account);
 *  3. otherwise, when provisioning is on, a password-less account is created just in time, with a
 *     membership in the configured workspace and role (never owner); when it is off → 403.
 * Disabled accounts are refused. The session itself is `AuthService.startSession`.
 *
 * @example
 *   const oidc = new OidcService(db, auth, { issuerUrl, clientId, clientSecret, redirectUri, stateSecret,
 *     provisioning: { workspaceId, role: 'viewer' } });
 *   const { authorizationUrl, sealedState } = await oidc.start();          // redirect the browser there
 *   const login = await oidc.callback(oidc.callbackUrl(request.url), sealedState, clientInfo);
 */
import * as client from 'openid-client';
import type { Db } from '../../platform/db/database.js';
import type { InvitationRole, JsonObject, JsonValue } from '../../platform/db/schema.js';
import { AppError, StartupError } from '../../platform/errors.js';
import type { AuthService, ClientInfo, TokenPair } from '../auth/service.js';
import * as repo from './repository.js';
import { type OidcStateRecord, STATE_SECRET_MIN_LENGTH, StateCodec } from './state.js';

export type ProvisioningRole = Extract<InvitationRole, 'viewer' | 'editor' | 'admin'>;
export const PROVISIONING_ROLES: readonly ProvisioningRole[] = ['viewer', 'editor', 'admin'];

export interface OidcProvisioning {
  /** Workspace every provisioned user joins; none: provisioned users start without a workspace. */
  workspaceId?: string | undefined;
  role: ProvisioningRole;
}

export interface OidcServiceOptions {
  /** Issuer identifier; `<issuer>/.well-known/openid-configuration` must answer. */
  issuerUrl: string;
  clientId: string;
  /** Confidential clients; without it the client is public (PKCE only). */
  clientSecret?: string | undefined;
  /** Larder's callback as registered at the provider: `https://larder.example.com/v1/auth/oidc/callback`. */
  redirectUri: string;
  /** Space-separated; must include `openid`. */
  scopes?: string | undefined;
  /** Just-in-time accounts for unknown users; null = only existing accounts may sign in. */
  provisioning: OidcProvisioning | null;
  /** Keys the encrypted sign-in state cookie (at least 32 characters, random). */
  stateSecret: string;
  /** Absolute URLs (origin + path) `/start?returnTo=` may name; the tokens travel in the fragment. */
  returnToAllowList?: readonly string[] | undefined;
  /** Permit `http://` issuer and redirect URI, and a state cookie without `Secure` (local providers, tests). */
  allowInsecureHttp?: boolean | undefined;
  /** Timeout of each request to the provider, in seconds. */
  timeoutSeconds?: number | undefined;
}

export const DEFAULT_SCOPES = 'openid email profile';

export interface OidcStart {
  authorizationUrl: string;
  state: string;
  /** The encrypted sign-in state: store it in the browser (cookie) until the callback. */
  sealedState: string;
}

/** `signed_in`: an existing link; `linked`: linked to an account by verified email; `provisioned`: new account. */
export type OidcOutcome = 'signed_in' | 'linked' | 'provisioned';

export interface OidcLogin {
  tokens: TokenPair;
  userId: string;
  outcome: OidcOutcome;
  returnTo: string | undefined;
}

interface ProviderIdentity {
  issuer: string;
  subject: string;
  email: string | null;
  emailVerified: boolean | null;
  displayName: string | null;
  claims: JsonObject;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Claims kept on the identity row (informational; never used for decisions). */
const KEPT_CLAIMS = [
  'name',
  'given_name',
  'family_name',
  'preferred_username',
  'locale',
  'zoneinfo',
  'hd',
  'tid',
  'acr',
  'amr',
  'auth_time',
] as const;
/** Errors from talking to the provider (as opposed to the provider saying no). */
const TRANSPORT_CODES = new Set([
  'OAUTH_TIMEOUT',
  'OAUTH_ABORT',
  'OAUTH_RESPONSE_IS_NOT_CONFORM',
  'OAUTH_RESPONSE_IS_NOT_JSON',
  'OAUTH_PARSE_ERROR',
]);

function parseUrl(value: string): URL | null {
  try {
    return new URL(value);
  } catch {
    return null;
  }
}

/** Every problem with the options, for one start-up error. */
function optionProblems(o: OidcServiceOptions): string[] {
  const problems: string[] = [];
  const schemes = o.allowInsecureHttp ? ['https:', 'http:'] : ['https:'];
  const checkUrl = (name: string, value: string) => {
    const url = parseUrl(value);
    if (!url || !schemes.includes(url.protocol) || url.hash)
      problems.push(`${name} must be an ${schemes.join(' or ')} URL without a fragment (got ${value})`);
  };
  checkUrl('OIDC issuer (LARDER_OIDC_ISSUER)', o.issuerUrl);
  checkUrl('OIDC redirect URI (LARDER_OIDC_REDIRECT_URI)', o.redirectUri);
  if (!o.clientId) problems.push('OIDC client id (LARDER_OIDC_CLIENT_ID) is required');
  if (!(o.scopes ?? DEFAULT_SCOPES).split(/\s+/).includes('openid'))
    problems.push('OIDC scopes (LARDER_OIDC_SCOPES) must include openid');
  if (o.stateSecret.length < STATE_SECRET_MIN_LENGTH)
    problems.push(
      `OIDC state secret (LARDER_OIDC_STATE_SECRET) must be at least ${STATE_SECRET_MIN_LENGTH} characters`,
    );
  if (o.provisioning) {
    if (!PROVISIONING_ROLES.includes(o.provisioning.role))
      problems.push(
        `OIDC provisioning role (LARDER_OIDC_PROVISION_ROLE) must be one of ${PROVISIONING_ROLES.join(', ')}`,
      );
    if (o.provisioning.workspaceId !== undefined && !UUID.test(o.provisioning.workspaceId))
      problems.push(
        'OIDC provisioning workspace (LARDER_OIDC_PROVISION_WORKSPACE_ID) must be a workspace id',
      );
  }
  for (const entry of o.returnToAllowList ?? [])
    checkUrl('OIDC returnTo allow-list (LARDER_OIDC_RETURN_TO) entry', entry);
  return problems;
}

/** origin + path: what an allow-list entry and a returnTo are compared on. */
const returnToKey = (url: URL) => `${url.origin}${url.pathname}`;

function normaliseEmail(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const email = value.trim().toLowerCase();
  // The same shape the users table enforces.
  return email.length >= 3 && email.length <= 320 && email.indexOf('@') > 0 ? email : null;
}

function displayNameOf(claims: Record<string, unknown>): string | null {
  const str = (key: string) => {
    const v = claims[key];
    return typeof v === 'string' && v.trim() ? v.trim() : undefined;
  };
  const given = [str('given_name'), str('family_name')].filter(Boolean).join(' ');
  return (str('name') ?? (given || undefined) ?? str('preferred_username'))?.slice(0, 200) ?? null;
}

function isJsonValue(value: unknown): value is JsonValue {
  if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) return true;
  if (Array.isArray(value)) return value.every(isJsonValue);
  return typeof value === 'object' && Object.values(value).every(isJsonValue);
}

function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23505';
}

/** Client authentication with a secret: Basic (the spec's default) unless the provider only lists Post. */
function secretAuthentication(secret: string): client.ClientAuth {
  const basic = client.ClientSecretBasic(secret);
  const post = client.ClientSecretPost(secret);
  return (as, c, body, headers) => {
    const supported = as.token_endpoint_auth_methods_supported;
    const useBasic = supported === undefined || supported.includes('client_secret_basic');
    (useBasic ? basic : post)(as, c, body, headers);
  };
}

/** openid-client errors → problems: the provider said no (401) or could not be talked to (503). */
function providerProblem(error: unknown): AppError {
  if (error instanceof client.AuthorizationResponseError) {
    const description = error.error_description ? `: ${error.error_description.slice(0, 300)}` : '';
    return new AppError('unauthenticated', {
      detail: `The identity provider did not sign you in (${error.error.slice(0, 100)}${description})`,
      extensions: { providerError: error.error.slice(0, 100) },
      cause: error,
    });
  }
  if (error instanceof client.ResponseBodyError || error instanceof client.WWWAuthenticateChallengeError) {
    const code = error instanceof client.ResponseBodyError ? error.error : 'invalid_client';
    return new AppError('unauthenticated', {
      detail: `The identity provider refused to exchange the authorization code (${code.slice(0, 100)})`,
      extensions: { providerError: code.slice(0, 100) },
      cause: error,
    });
  }
  if (error instanceof client.ClientError && !(error.code === undefined || TRANSPORT_CODES.has(error.code))) {
    return new AppError('unauthenticated', {
      detail: `The identity provider's response failed validation (${error.message})`,
      cause: error,
    });
  }
  return new AppError('service_unavailable', {
    detail: 'The identity provider could not be reached or answered unexpectedly; try again later',
    cause: error,
  });
}

export class OidcService {
  readonly #options: OidcServiceOptions;
  readonly #scopes: string;
  readonly #codec: StateCodec;
  readonly #returnTo: ReadonlySet<string>;
  #configuration: Promise<client.Configuration> | undefined;

  constructor(
    private readonly db: Db,
    private readonly auth: AuthService,
    options: OidcServiceOptions,
  ) {
    const problems = optionProblems(options);
    if (problems.length > 0) throw new StartupError(`Invalid OIDC settings:\n  - ${problems.join('\n  - ')}`);
    this.#options = options;
    this.#scopes = options.scopes ?? DEFAULT_SCOPES;
    this.#codec = new StateCodec(options.stateSecret);
    this.#returnTo = new Set((options.returnToAllowList ?? []).map((u) => returnToKey(new URL(u))));
  }

  /** Cookies may omit `Secure` only for a plain-HTTP deployment that was explicitly allowed. */
  get insecureHttp(): boolean {
    return this.#options.allowInsecureHttp === true;
  }

  /**
   * The URL the provider redirected the browser to: the registered redirect URI with the request's
   * query. Built from configuration, not from Host/X-Forwarded-* headers, so proxies cannot skew it.
   */
  callbackUrl(requestUrl: string): URL {
    const url = new URL(this.#options.redirectUri);
    const q = requestUrl.indexOf('?');
    url.search = q === -1 ? '' : requestUrl.slice(q);
    return url;
  }

  /** Begins a login: where to send the browser, and the sealed state to keep in it meanwhile. */
  async start(input: { returnTo?: string | undefined } = {}): Promise<OidcStart> {
    const returnTo = input.returnTo === undefined ? undefined : this.#checkReturnTo(input.returnTo);
    const config = await this.#config();
    const codeVerifier = client.randomPKCECodeVerifier();
    const record: OidcStateRecord = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      codeVerifier,
      createdAt: Date.now(),
      returnTo,
    };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: this.#options.redirectUri,
      scope: this.#scopes,
      response_type: 'code',
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state: record.state,
      nonce: record.nonce,
    });
    return { authorizationUrl: url.href, state: record.state, sealedState: await this.#codec.seal(record) };
  }

  /** Finishes a login: checks the response against the sealed state, resolves the user, opens a session. */
  async callback(
    currentUrl: URL,
    sealedState: string | undefined,
    clientInfo: ClientInfo,
  ): Promise<OidcLogin> {
    if (!sealedState) {
      throw new AppError('bad_request', {
        detail:
          'The sign-in state cookie is missing (expired, or cookies are blocked): start again at /v1/auth/oidc/start',
      });
    }
    const record = await this.#codec.open(sealedState);
    if (!record) {
      throw new AppError('bad_request', {
        detail: 'The sign-in state cookie is invalid or expired: start again at /v1/auth/oidc/start',
      });
    }
    // Checked here as well as by openid-client, so a forged callback gets this answer even when it
    // carries an error: the response must belong to the login this browser started.
    if (currentUrl.searchParams.get('state') !== record.state) {
      throw new AppError('bad_request', {
        detail: 'The state parameter does not match the sign-in this browser started: start again',
      });
    }
    const identity = await this.#exchange(currentUrl, record);
    const { userId, outcome } = await this.#resolveUser(identity);
    const tokens = await this.auth.startSession(userId, clientInfo);
    return { tokens, userId, outcome, returnTo: record.returnTo };
  }

  #checkReturnTo(value: string): string {
    const url = parseUrl(value);
    if (!url || url.hash || !this.#returnTo.has(returnToKey(url))) {
      throw new AppError('bad_request', {
        detail: 'returnTo is not on this server’s allow-list of return addresses',
      });
    }
    return url.href;
  }

  /** Discovery once, lazily; a failure is not cached, so the next login tries again. */
  #config(): Promise<client.Configuration> {
    this.#configuration ??= this.#discover().catch((error: unknown) => {
      this.#configuration = undefined;
      throw providerProblem(error);
    });
    return this.#configuration;
  }

  async #discover(): Promise<client.Configuration> {
    const { issuerUrl, clientId, clientSecret, allowInsecureHttp, timeoutSeconds = 10 } = this.#options;
    return client.discovery(
      new URL(issuerUrl),
      clientId,
      clientSecret ? { client_secret: clientSecret } : undefined,
      clientSecret ? secretAuthentication(clientSecret) : client.None(),
      {
        // Deprecated only as a warning sign: plain HTTP is opt-in (local providers and tests).
        // eslint-disable-next-line @typescript-eslint/no-deprecated
        execute: allowInsecureHttp ? [client.allowInsecureRequests] : [],
        timeout: timeoutSeconds,
      },
    );
  }

  /** Code → tokens (PKCE, state, nonce and ID token checked by openid-client) → the provider's claims. */
  async #exchange(currentUrl: URL, record: OidcStateRecord): Promise<ProviderIdentity> {
    const config = await this.#config();
    try {
      const tokens = await client.authorizationCodeGrant(config, currentUrl, {
        pkceCodeVerifier: record.codeVerifier,
        expectedState: record.state,
        expectedNonce: record.nonce,
        idTokenExpected: true,
      });
      const idToken = tokens.claims();
      if (!idToken)
        throw new AppError('unauthenticated', { detail: 'The identity provider sent no ID token' });
      let claims: Record<string, unknown> = { ...idToken };
      // Conformant providers may keep scope claims out of the ID token and serve them at userinfo.
      if (
        (claims.email === undefined || claims.email_verified === undefined) &&
        config.serverMetadata().userinfo_endpoint
      ) {
        const userinfo = await client.fetchUserInfo(config, tokens.access_token, idToken.sub);
        claims = { ...userinfo, ...claims };
      }
      const kept: JsonObject = {};
      for (const key of KEPT_CLAIMS) {
        const value = claims[key];
        if (value !== undefined && isJsonValue(value)) kept[key] = value;
      }
      return {
        issuer: idToken.iss,
        subject: idToken.sub,
        email: normaliseEmail(claims.email),
        emailVerified: typeof claims.email_verified === 'boolean' ? claims.email_verified : null,
        displayName: displayNameOf(claims),
        claims: kept,
      };
    } catch (error) {
      throw error instanceof AppError ? error : providerProblem(error);
    }
  }

  /** Two first logins of one person can race; the loser finds the winner's rows on its second pass. */
  async #resolveUser(identity: ProviderIdentity): Promise<{ userId: string; outcome: OidcOutcome }> {
    try {
      return await this.#resolveOnce(identity);
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      return this.#resolveOnce(identity);
    }
  }

  async #resolveOnce(identity: ProviderIdentity): Promise<{ userId: string; outcome: OidcOutcome }> {
    const snapshot = {
      email: identity.email,
      emailVerified: identity.emailVerified,
      claims: identity.claims,
    };
    const linked = await repo.findLinkedUser(this.db, identity.issuer, identity.subject);
    if (linked) {
      assertEnabled(linked);
      await this.db.transaction().execute(async (trx) => {
        await repo.recordIdentityLogin(trx, linked.identityId, snapshot);
        await repo.recordUserLogin(trx, linked.id, false);
      });
      return { userId: linked.id, outcome: 'signed_in' };
    }

    const { email } = identity;
    if (!email) {
      throw new AppError('forbidden', {
        detail: 'The identity provider sent no usable email address (request the email scope)',
      });
    }
    if (identity.emailVerified !== true) {
      throw new AppError('forbidden', {
        detail: `The identity provider does not vouch for ${email} (email_verified is not true); Larder links and creates accounts only for verified addresses`,
      });
    }
    const link = { issuer: identity.issuer, subject: identity.subject, ...snapshot };

    const existing = await repo.findUserByEmail(this.db, email);
    if (existing) {
      assertEnabled(existing);
      await this.db.transaction().execute(async (trx) => {
        await repo.insertIdentity(trx, { userId: existing.id, ...link });
        await repo.recordUserLogin(trx, existing.id, true);
      });
      return { userId: existing.id, outcome: 'linked' };
    }

    const { provisioning } = this.#options;
    if (!provisioning) {
      throw new AppError('forbidden', {
        detail: `No Larder account exists for ${email} and single sign-on does not create accounts: ask an administrator for an invitation`,
      });
    }
    const userId = await this.db.transaction().execute(async (trx) => {
      const { workspaceId } = provisioning;
      if (workspaceId !== undefined && !(await repo.workspaceIsLive(trx, workspaceId))) {
        // An operator error, not the user's: a 500 whose log line says what to fix.
        throw new Error(`OIDC provisioning workspace ${workspaceId} does not exist or is deleted`);
      }
      const user = await repo.insertSsoUser(trx, { email, displayName: identity.displayName });
      await repo.insertIdentity(trx, { userId: user.id, ...link });
      if (workspaceId !== undefined)
        await repo.insertMembership(trx, { workspaceId, userId: user.id, role: provisioning.role });
      return user.id;
    });
    return { userId, outcome: 'provisioned' };
  }
}

function assertEnabled(user: { disabled_at: Date | null }): void {
  if (user.disabled_at) throw new AppError('forbidden', { detail: 'This Larder account is disabled' });
}
