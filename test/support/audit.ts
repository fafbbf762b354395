// The audit trail as it lies in the tests' S3 (moto): read straight from the bucket, as an auditor's tool would.
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { AUDIT_BUCKET, AUDIT_PREFIX, awsClientConfig } from '../../scripts/stack';
import { current, eventually, TENANT } from './world';

let s3: S3Client | undefined;
export function testS3(): S3Client {
  s3 ??= new S3Client({ ...awsClientConfig(current().stack.awsEndpoint), forcePathStyle: true });
  return s3;
}

export interface StoredEvent {
  key: string;
  event: any;
}

/**
 * Objects read so far, by key. An audit object is written once and never changed (Object Lock), so
 * a poll downloads only what is new since the last.
 */
const read = new Map<string, unknown>();

/** Every audit object of the tenant (all dates), parsed. */
export async function storedEvents(tenantId = TENANT.id): Promise<StoredEvent[]> {
  const found: StoredEvent[] = [];
  let token: string | undefined;
  do {
    const page = await testS3().send(new ListObjectsV2Command({ Bucket: AUDIT_BUCKET, Prefix: `${AUDIT_PREFIX}/tenant=${tenantId}/`, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      if (!read.has(o.Key!)) {
        const body = await testS3().send(new GetObjectCommand({ Bucket: AUDIT_BUCKET, Key: o.Key! }));
        read.set(o.Key!, JSON.parse(await body.Body!.transformToString()));
      }
      found.push({ key: o.Key!, event: structuredClone(read.get(o.Key!)) });
    }
    token = page.NextContinuationToken;
  } while (token);
  return found;
}

/** The grant's events in the order they happened, once `names` have all been written. */
export async function grantEvents(grantId: string, names: string[], tenantId = TENANT.id, timeoutMs = 60_000): Promise<StoredEvent[]> {
  return eventually(`audit events ${names.join(', ')} of grant ${grantId}`, async () => {
    const events = (await storedEvents(tenantId)).filter((e) => e.event.grant_id === grantId);
    const have = events.map((e) => e.event.event);
    return names.every((n) => have.includes(n)) ? events.sort((a, b) => a.event.at.localeCompare(b.event.at)) : undefined;
  }, timeoutMs);
}

export async function headOf(key: string) {
  return testS3().send(new HeadObjectCommand({ Bucket: AUDIT_BUCKET, Key: key }));
}
