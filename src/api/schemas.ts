// Request schemas: the seed's field names, checked strictly (unknown fields are errors).
import { z } from 'zod';
import { TARGET_PATTERN } from '../domain/grant';

export const targetSchema = z.string().regex(TARGET_PATTERN, 'must be AWS::Account::{12-digit account id}');
/** IAM Identity Center permission-set names. */
export const roleSchema = z.string().regex(/^[\w+=,.@-]{1,32}$/, 'must be a permission set name');
export const grantStatusSchema = z.enum(['active', 'pending', 'provisioning', 'expired', 'revoked']);
export const uuidSchema = z.uuid({ version: undefined }).transform((id) => id.toLowerCase());

export const ensureBodySchema = z
  .strictObject({
    entitlements: z
      .array(z.strictObject({ target: targetSchema, role: roleSchema, duration_seconds: z.int().positive().optional() }))
      .min(1)
      .max(20),
    justification: z
      .strictObject({
        reason: z.string().max(4000).optional(),
        attachments: z.array(z.string().max(2048)).max(20).optional(),
      })
      .optional(),
    dry_run: z.boolean().optional(),
  })
  .refine(
    (body) => new Set(body.entitlements.map((e) => `${e.target}|${e.role}`)).size === body.entitlements.length,
    { message: 'each target and role may appear once', path: ['entitlements'] },
  );

export const reviewBodySchema = z.strictObject({
  decision: z.enum(['approve', 'deny']),
  comment: z.string().max(4000).optional(),
});

export const revokeBodySchema = z.strictObject({ reason: z.string().max(4000).optional() });

export const grantFiltersSchema = z.strictObject({
  status: grantStatusSchema.optional(),
  target: targetSchema.optional(),
  role: roleSchema.optional(),
});
