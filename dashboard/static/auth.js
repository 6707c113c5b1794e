// Sign-in with the authorization code grant and PKCE (S256) against the API's own
// authorization server. Tokens live in this module's memory only: never in
// localStorage or cookies, so a reload asks to sign in again. Only the PKCE verifier
// and state survive the trip to the sign-in page (sessionStorage, removed on return).

const PENDING = "portfolio-dashboard.pending-sign-in";
const SCOPES = "portfolio:read finance:read";
const REFRESH_EARLY_SECONDS = 60;

const base = new URL(".", document.baseURI);
const clientId = document.querySelector('meta[name="oauth-client-id"]').content;
// Where the authorization server sends the code back: this page, exactly as registered.
const redirectUri = new URL(location.pathname, location.origin).href;

let tokens = null; // {access, refresh, scopes: Set, expiresAt}
let refreshTimer = null;
let refreshing = null;
let signingOut = false; // what the revocation makes fail meanwhile is no news
const listeners = new Set();

export class SessionEnded extends Error {}

export function onChange(listener) {
  listeners.add(listener);
}

function changed(reason) {
  for (const listener of listeners) listener(signedIn(), reason);
}

export function signedIn() {
  return tokens !== null;
}

export function scopes() {
  return tokens ? tokens.scopes : new Set();
}

export function accessToken() {
  return tokens ? tokens.access : null;
}

function randomText(bytes) {
  const values = crypto.getRandomValues(new Uint8Array(bytes));
  return base64url(values);
}

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function challengeOf(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

export async function startSignIn() {
  const verifier = randomText(48);
  const state = randomText(24);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, hash: location.hash }));
  const url = new URL("oauth/authorize", base);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: SCOPES,
    state,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.href);
}

// Back from the sign-in page: trade the code for tokens. Returns false when this page
// load is not a return from sign-in; throws with a message people can read on refusal.
export async function finishSignIn() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return false;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  // The code leaves the address bar (and the history) at once.
  history.replaceState(null, "", location.pathname + (pending ? pending.hash : ""));
  if (params.has("error")) {
    throw new Error(
      params.get("error") === "access_denied"
        ? "Sign-in was cancelled."
        : `Sign-in failed: ${params.get("error_description") || params.get("error")}.`,
    );
  }
  if (!pending || pending.state !== params.get("state")) {
    throw new Error("Sign-in could not be completed (it was started in another tab or expired). Please sign in again.");
  }
  await tokenRequest({
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: redirectUri,
    code_verifier: pending.verifier,
  });
  return true;
}

async function tokenRequest(fields) {
  const response = await fetch(new URL("oauth/token", base), {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ ...fields, client_id: clientId }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new SessionEnded(body.error_description || `The sign-in server answered ${response.status}.`);
  }
  tokens = {
    access: body.access_token,
    // Rotated at every use: the server ends the family if an old one comes back.
    refresh: body.refresh_token || null,
    scopes: new Set((body.scope || "").split(" ").filter(Boolean)),
    expiresAt: Date.now() + body.expires_in * 1000,
  };
  scheduleRefresh(body.expires_in);
  changed("signed-in");
}

function scheduleRefresh(expiresIn) {
  clearTimeout(refreshTimer);
  const seconds = Math.max(5, expiresIn - REFRESH_EARLY_SECONDS);
  refreshTimer = setTimeout(() => refresh().catch(() => {}), seconds * 1000);
}

// A new access token (and refresh token) before the old one expires, or after the API
// refused it. One at a time: a refresh token may be used once.
export function refresh() {
  if (signingOut) return Promise.reject(new SessionEnded("signing out"));
  if (!refreshing) {
    refreshing = (async () => {
      if (!tokens || !tokens.refresh) {
        end("Your session has expired. Please sign in again.");
        throw new SessionEnded("expired");
      }
      try {
        await tokenRequest({ grant_type: "refresh_token", refresh_token: tokens.refresh });
      } catch (error) {
        end("Your session has ended. Please sign in again.");
        throw error;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

function end(reason) {
  clearTimeout(refreshTimer);
  tokens = null;
  changed(reason);
}

// Sign-out revokes the refresh token (its whole family, so every access token it gave)
// and the access token itself (RFC 7009), then forgets both.
export async function signOut() {
  const held = tokens;
  signingOut = true;
  clearTimeout(refreshTimer);
  for (const token of held ? [held.refresh, held.access] : []) {
    if (!token) continue;
    await fetch(new URL("oauth/revoke", base), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token, client_id: clientId }),
    }).catch(() => {});
  }
  signingOut = false;
  end("You are signed out.");
}
