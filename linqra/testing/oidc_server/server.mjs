// A real OpenID provider for the tests and benchmarks (linqra/testing/oidc.py):
// node-oidc-provider (OpenID Certified) on 127.0.0.1.
//
//   node server.mjs --port PORT --keys KEYS.json --config CONFIG.json
//   (or OIDC_PORT, OIDC_KEYS, OIDC_CONFIG in the environment)
//
// * issuer http://127.0.0.1:PORT; discovery at /.well-known/openid-configuration, keys at /jwks;
// * KEYS.json is {"keys": [private RS256 JWK, ...]}: the first key signs, every key is published,
//   so restarting with [new, old] rotates the signing key while old tokens stay verifiable;
// * CONFIG.json declares the resource servers (resource indicator -> audience) and the clients.
//   Each client gets tokens through client_credentials; its entry says which Keycloak-shaped
//   claims those tokens carry (realm_access.roles, resource_access.<client>.roles, groups,
//   teams, preferred_username), its `sub`, its access-token lifetime and an optional `nbf`
//   in the future. Access tokens are RS256 JWTs whose `aud` is the resource's audience.
// * CONFIG.json may also declare browser clients ({client_id, redirect_uris}): public clients of
//   the Authorization Code flow with PKCE (a web console). Their sign-in page is the provider's
//   development login form: the login is one of the clients above, whose claims the user's
//   tokens then carry (`sub` included); consent is asked once. Ask for scope `openid api` to get
//   an access token for the first resource.
// * GET /__stats answers {"jwks": N}: how many times the key set was fetched (the tests count
//   refreshes where they happen, at the provider).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.OIDC_PORT },
    keys: { type: 'string', default: process.env.OIDC_KEYS },
    config: { type: 'string', default: process.env.OIDC_CONFIG },
  },
});
if (!args.port || !args.keys || !args.config) {
  console.error('usage: node server.mjs --port PORT --keys KEYS.json --config CONFIG.json');
  process.exit(2);
}

const port = Number.parseInt(args.port, 10);
const issuer = `http://127.0.0.1:${port}`;
const jwks = JSON.parse(readFileSync(args.keys, 'utf8'));
const config = JSON.parse(readFileSync(args.config, 'utf8'));
const resources = config.resources ?? {};
const clientsById = new Map(config.clients.map((c) => [c.client_id, c]));
const browserClients = config.browser_clients ?? [];

function keycloakClaims(client) {
  const claims = { azp: client.client_id };
  if (client.username !== undefined) claims.preferred_username = client.username;
  if (client.realm_roles !== undefined) claims.realm_access = { roles: client.realm_roles };
  if (client.client_roles !== undefined) {
    claims.resource_access = Object.fromEntries(
      Object.entries(client.client_roles).map(([name, roles]) => [name, { roles }]),
    );
  }
  if (client.groups !== undefined) claims.groups = client.groups;
  if (client.teams !== undefined) claims.teams = client.teams;
  if (client.not_before_seconds) {
    claims.nbf = Math.floor(Date.now() / 1000) + client.not_before_seconds;
  }
  return { ...client.extra_claims, ...claims };
}

const provider = new Provider(issuer, {
  jwks,
  clients: [
    ...config.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    ...browserClients.map((c) => ({
      client_id: c.client_id,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: c.redirect_uris,
      post_logout_redirect_uris: c.redirect_uris,
      token_endpoint_auth_method: 'none',
    })),
  ],
  // the users of browser sign-ins: the clients above, by client id (their claims, their sub)
  async findAccount(ctx, id) {
    const user = clientsById.get(id);
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: user.sub ?? id, preferred_username: user.username ?? id };
      },
    };
  },
  features: {
    devInteractions: { enabled: browserClients.length > 0 },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => Object.keys(resources)[0],
      useGrantedResource: () => true, // a code exchanged without `resource`: the granted one
      getResourceServerInfo(ctx, indicator, client) {
        const resource = resources[indicator];
        if (!resource) throw new errors.InvalidTarget('unknown resource indicator');
        const ttl = clientsById.get(client.clientId)?.access_token_ttl;
        return {
          scope: 'api',
          audience: resource.audience,
          accessTokenFormat: 'jwt',
          accessTokenTTL: ttl ?? resource.access_token_ttl ?? 300,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: { ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 300 },
  async extraTokenClaims(ctx, token) {
    // a browser sign-in's token: the user's claims; a client_credentials token: the client's
    const client = clientsById.get(token.accountId ?? token.clientId);
    return client ? { ...keycloakClaims(client), azp: token.clientId } : undefined;
  },
  formats: {
    customizers: {
      // a client's tokens may carry a user's `sub` (the provider would put its client id)
      async jwt(ctx, token, structured) {
        const sub = clientsById.get(token.accountId ?? token.clientId)?.sub;
        if (sub) structured.payload.sub = sub;
      },
    },
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

let jwksFetches = 0;
const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url === '/__stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jwks: jwksFetches }));
    return;
  }
  if (req.url.startsWith('/jwks')) jwksFetches += 1;
  callback(req, res);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
