// Push authentication with a locally generated RSA key standing in for Google's signing key.
import { createSign, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PushAuthenticator } from './push-auth.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
const certs = { k1: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
const AUDIENCE = 'https://mlab-etl.example/push';
const ACCOUNT = 'pubsub-push@project.iam.gserviceaccount.com';

function token(claims: Record<string, unknown>, key = privateKey, kid = 'k1'): string {
  const now = Math.floor(Date.now() / 1000);
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${enc({ alg: 'RS256', typ: 'JWT', kid })}.${enc({ iss: 'https://accounts.google.com', aud: AUDIENCE, email: ACCOUNT, email_verified: true, sub: '1', iat: now, exp: now + 600, ...claims })}`;
  const signature = createSign('RSA-SHA256').update(body).sign(key).toString('base64url');
  return `${body}.${signature}`;
}

describe('PushAuthenticator', () => {
  const auth = new PushAuthenticator({ audience: AUDIENCE, serviceAccount: ACCOUNT, certs });

  it('accepts a Google-style token for the audience and service account', async () => {
    expect(await auth.verify(`Bearer ${token({})}`)).toEqual({ ok: true, email: ACCOUNT });
  });

  it('refuses a missing token (401) and wrong audience, account, issuer, expiry or key (403)', async () => {
    expect(await auth.verify(undefined)).toMatchObject({ ok: false, status: 401 });
    const now = Math.floor(Date.now() / 1000);
    for (const bad of [
      token({ aud: 'https://elsewhere.example/push' }),
      token({ email: 'someone@else.iam.gserviceaccount.com' }),
      token({ email_verified: false }),
      token({ iss: 'https://evil.example' }),
      token({ iat: now - 7200, exp: now - 3600 }),
      token({}, other.privateKey),
      `${token({}).slice(0, -4)}AAAA`,
    ]) {
      expect(await auth.verify(`Bearer ${bad}`)).toMatchObject({ ok: false, status: 403 });
    }
  });
});
