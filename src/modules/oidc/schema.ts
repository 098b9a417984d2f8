/** TypeBox schemas of the SSO routes. */
import Type from 'typebox';

export const StartQuery = Type.Object(
  {
    returnTo: Type.Optional(
      Type.String({
        format: 'uri',
        maxLength: 1024,
        description:
          'Where to send the browser after sign-in, with the tokens in the URL fragment. Must be on the server’s allow-list; without it the callback answers JSON.',
        examples: ['https://app.example.com/sso-complete'],
      }),
    ),
  },
  { additionalProperties: false },
);

/** The authorization response (RFC 6749 §4.1.2, RFC 9207 `iss`). Providers add their own parameters. */
export const CallbackQuery = Type.Object(
  {
    code: Type.Optional(Type.String({ maxLength: 4096 })),
    state: Type.Optional(Type.String({ maxLength: 1024 })),
    iss: Type.Optional(Type.String({ maxLength: 2048 })),
    error: Type.Optional(Type.String({ maxLength: 256, examples: ['access_denied'] })),
    error_description: Type.Optional(Type.String({ maxLength: 4096 })),
    error_uri: Type.Optional(Type.String({ maxLength: 2048 })),
  },
  {
    additionalProperties: true,
    description: 'Sent by the identity provider; other parameters (session_state, scope, …) are ignored',
  },
);

// The same shape as the token pair of /v1/auth/login (kept in step by the OIDC tests, which log in
// with it and call /v1/me).
export const Tokens = Type.Object(
  {
    accessToken: Type.String({ description: 'JWT (ES256) for `Authorization: Bearer`; short-lived' }),
    tokenType: Type.Literal('Bearer'),
    expiresIn: Type.Integer({ description: 'Seconds until the access token expires' }),
    refreshToken: Type.String({ description: 'Single-use: exchange it at /v1/auth/refresh for a new pair' }),
  },
  { description: 'A token pair' },
);

export const Redirect = Type.Null({ description: 'Redirect: see the `Location` header' });
