/**
 * Authentication of Pub/Sub push requests. A push subscription created with
 * `--push-auth-service-account` sends `Authorization: Bearer <OIDC token>` signed by Google; the
 * worker checks the signature against Google's published certificates, the audience it was given,
 * the issuer, the expiry, and that the token is for the expected service account.
 */
import { OAuth2Client, type LoginTicket } from 'google-auth-library';

const ISSUERS = ['accounts.google.com', 'https://accounts.google.com'];

export interface PushAuthOptions {
  /** The audience the subscription puts in the token (by default its push endpoint URL). */
  audience: string;
  /** The service account the subscription signs as; any Google-signed token for the audience when absent. */
  serviceAccount?: string | undefined;
  /** Certificates by key id (PEM); Google's published ones when absent. For tests. */
  certs?: Record<string, string>;
}

export type PushAuthResult = { ok: true; email: string } | { ok: false; status: 401 | 403; reason: string };

export class PushAuthenticator {
  private readonly client = new OAuth2Client();

  constructor(private readonly options: PushAuthOptions) {}

  async verify(authorization: string | undefined): Promise<PushAuthResult> {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!m) return { ok: false, status: 401, reason: 'a Bearer token is required' };
    let ticket: LoginTicket;
    try {
      const certs = this.options.certs ?? (await this.client.getFederatedSignonCertsAsync()).certs;
      ticket = await this.client.verifySignedJwtWithCertsAsync(m[1] as string, certs, this.options.audience, ISSUERS);
    } catch (err) {
      return { ok: false, status: 403, reason: `token refused: ${(err as Error).message}` };
    }
    const payload = ticket.getPayload();
    const email = payload?.email;
    if (
      this.options.serviceAccount !== undefined &&
      (email !== this.options.serviceAccount || payload?.email_verified !== true)
    ) {
      return { ok: false, status: 403, reason: `token is not for ${this.options.serviceAccount}` };
    }
    return { ok: true, email: email ?? '' };
  }
}
