// A site's server on npm `openid-client` 6.x (certified by the OpenID Foundation for its
// relying-party profiles) against eid-oidc, as docs/oidc.md says: discovery, an
// authorization URL with PKCE, the code exchanged, the ID token validated, userinfo.
// The provider's CA comes from NODE_EXTRA_CA_CERTS.
//   node oidc-client.mjs ISSUER CLIENT_ID SECRET REDIRECT start [SCOPE]
//     → {url, verifier, state, nonce}
//   node oidc-client.mjs ISSUER CLIENT_ID SECRET REDIRECT finish CALLBACK_URL VERIFIER STATE NONCE
//     → {claims, userinfo, token}
// A failure prints {"error": …} and exits 1.
import * as client from "openid-client";

const [issuer, clientId, secret, redirect, command, ...rest] = process.argv.slice(2);

async function run() {
  // the client is registered with client_secret_basic (openid-client's default is post)
  const config = await client.discovery(
    new URL(issuer),
    clientId,
    undefined,
    client.ClientSecretBasic(secret),
  );
  if (command === "start") {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirect,
      scope: rest[0] || "openid profile",
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      nonce,
    });
    return { url: url.href, verifier, state, nonce };
  }
  if (command === "finish") {
    const [callback, verifier, state, nonce] = rest;
    const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    return { claims, userinfo, token: { token_type: tokens.token_type, scope: tokens.scope } };
  }
  throw new Error(`unknown command ${command}`);
}

run()
  .then((answer) => {
    process.stdout.write(JSON.stringify(answer) + "\n");
  })
  .catch((error) => {
    process.stdout.write(
      JSON.stringify({ error: { name: error.name, message: error.message, code: error.code } }) + "\n",
    );
    process.exit(1);
  });
