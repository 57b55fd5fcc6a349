// A real OpenID Connect provider for the sign-in tests: npm's oidc-provider (panva), with its
// development login pages. Any login name is accepted; its first word is the account's role:
// "finance-ana" signs in as ana with the role finance.
//   node tests/support/oidc_provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
import Provider from "oidc-provider";

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: [new URL("/console", redirectUri).href],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
  }],
  pkce: { required: () => true },
  scopes: ["openid", "profile", "roles", "offline_access"],
  claims: { openid: ["sub"], profile: ["name"], roles: ["roles"] },
  conformIdTokenClaims: false, // the roles in the ID token itself
  findAccount: (_, id) => ({
    accountId: id,
    claims: () => ({ sub: id, name: id, roles: [id.split("-")[0]] }),
  }),
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  ttl: { AuthorizationCode: 60, IdToken: 600, AccessToken: 600, Session: 3600, Interaction: 600, Grant: 3600 },
});
provider.proxy = false;
provider.listen(Number(port), "127.0.0.1", () => console.log(`oidc provider on ${port}`));
