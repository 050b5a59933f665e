// A real OpenID provider (oidc-provider, OpenID Certified) for the OAuth tests, on a loopback port.
// Usage: node provider.mjs CONFIG.json  -- prints "ready <issuer>" on stdout once listening.
// CONFIG: {port, issuer, jwks: {keys: [private JWKs; the first signs]},
//          clients: [{client_id, client_secret, scope, name?, groups?}],
//          resources: {"<resource URL>": {scope, ttl?}}}
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const byId = Object.fromEntries(cfg.clients.map((c) => [c.client_id, c]));
const allScopes = new Set(['openid', 'offline_access']);
for (const c of cfg.clients) for (const s of c.scope.split(' ')) allScopes.add(s);

const provider = new Provider(cfg.issuer, {
  clients: cfg.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: c.scope,
  })),
  jwks: cfg.jwks,
  scopes: [...allScopes],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        const rs = cfg.resources[resource];
        if (!rs) throw new errors.InvalidTarget();
        return {
          scope: rs.scope,
          audience: resource,
          accessTokenTTL: rs.ttl ?? 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  extraTokenClaims: (_ctx, token) => {
    const c = byId[token.clientId];
    if (!c) return undefined;
    return { groups: c.groups ?? [], name: c.name ?? c.client_id };
  },
});
provider.proxy = false;
const server = provider.listen(cfg.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${cfg.issuer}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
