import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * Which station ids each station credential may submit for. The file is mounted from a secret;
 * tokens may be given in clear (`token`) or, better, as `tokenSha256` (hex) so the file itself
 * holds no usable secret.
 */
const credentialsFileSchema = z.object({
  stations: z
    .array(
      z
        .object({
          name: z.string().min(1).max(128),
          token: z.string().min(16).max(512).optional(),
          tokenSha256: z
            .string()
            .regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters')
            .optional(),
          stationIds: z.array(z.string().min(1).max(64)).min(1),
        })
        .refine((entry) => (entry.token === undefined) !== (entry.tokenSha256 === undefined), {
          message: 'give exactly one of token or tokenSha256',
        }),
    )
    .min(1),
});

export type StationCredentialsFile = z.infer<typeof credentialsFileSchema>;

export interface StationPrincipal {
  /** Name of the credential (for logs and metrics; never the token). */
  name: string;
  stationIds: ReadonlySet<string>;
}

const sha256Hex = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

export class StationCredentials {
  private readonly byTokenHash = new Map<string, StationPrincipal>();

  constructor(file: StationCredentialsFile) {
    for (const entry of file.stations) {
      const hash = entry.tokenSha256 ?? sha256Hex(entry.token ?? '');
      this.byTokenHash.set(hash, { name: entry.name, stationIds: new Set(entry.stationIds) });
    }
  }

  static parse(json: unknown, origin: string): StationCredentials {
    const parsed = credentialsFileSchema.safeParse(json);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
      throw new Error(`Invalid station credentials in ${origin}: ${problems.join('; ')}`);
    }
    return new StationCredentials(parsed.data);
  }

  static fromFile(path: string): StationCredentials {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new Error(`Cannot read station credentials file ${path}: ${(error as Error).message}`);
    }
    return StationCredentials.parse(json, path);
  }

  /** The principal a bearer token authenticates, or undefined. Lookup by digest: the token never sits in a map. */
  authenticate(token: string | undefined): StationPrincipal | undefined {
    if (!token) return undefined;
    return this.byTokenHash.get(sha256Hex(token));
  }
}
