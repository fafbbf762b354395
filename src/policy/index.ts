// Cedar policy decisions for the access service. The policy folder is parsed and validated once
// (loadPolicySet); authorize() only builds the request and asks cedar-wasm's pre-parsed cache.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { LRUCache } from 'lru-cache';
import { NOT_ON_CALL_LEVEL } from '../domain/facts';
import type { Principal } from '../domain/grant';

export type PolicyAction = 'request' | 'activate' | 'review' | 'revoke' | 'audit';

export interface PolicyRequest {
  principal: Principal;
  action: PolicyAction;
  /** 12 digits */
  accountId: string;
  /** e.g. 'production'; 'unknown' for an account the tenant's config does not describe */
  accountEnvironment: string;
  /** What the organisation says of the account (src/domain/accounts.ts); absent: nothing (no name, no tags, no OUs). */
  account?: AccountAttributes;
  /** A group target: the resource is the group (GROUP_ENTITY_TYPE, by name), not an account. */
  group?: { name: string; environment: string };
  context: {
    role: string;
    duration_seconds: number;
    has_reason: boolean;
    has_ticket_attachment: boolean;
    break_glass?: boolean;
    /** The call names a later start (`starts_at`). */
    scheduled?: boolean;
    /** How far ahead of the call the start is, in whole seconds; 0 when not scheduled. */
    starts_in_seconds?: number;
    /** The permission set's session duration in seconds; 0 when not known. */
    session_duration_seconds?: number;
    /** Letters and digits in the reason (issue 40). */
    reason_length?: number;
    oncall?: OncallContext;
    ticket?: TicketContext;
  };
}

/** `context.oncall` (schema.cedarschema says what each means). */
// Type aliases, not interfaces: Cedar's JSON value type needs their implicit index signature.
export type OncallContext = {
  status: string;
  schedules: string[];
  schedule_ids: string[];
  services: string[];
  service_ids: string[];
  level: number;
  seconds_left: number;
};

/** What a context made without the sources says (policyContext gives the same for a tenant without them). */
const NOTHING_KNOWN: { oncall: OncallContext; ticket: TicketContext } = {
  oncall: { status: 'unknown', schedules: [], schedule_ids: [], services: [], service_ids: [], level: NOT_ON_CALL_LEVEL, seconds_left: 0 },
  ticket: { status: 'none', key: '', type: '', status_category: '', priority: '', requester_is_assignee: false, requester_is_reporter: false, has_change_window: false, in_change_window: false },
};

/** `context.ticket` (schema.cedarschema says what each means). */
export type TicketContext = {
  status: string;
  key: string;
  type: string;
  status_category: string;
  priority: string;
  requester_is_assignee: boolean;
  requester_is_reporter: boolean;
  has_change_window: boolean;
  in_change_window: boolean;
};

/** An account's attributes beyond its environment, and the OUs above it (ids from the root down). */
export interface AccountAttributes {
  name: string | null;
  tags: Readonly<Record<string, string>>;
  ou_path: readonly string[];
}

/**
 * What the policy folder's schema declares of an account beyond `environment`: a schema from before
 * organisations (a tenant's own copy) keeps working, its accounts sent as before.
 */
interface AccountShape {
  name: boolean;
  tags: boolean;
  /** `entity Account in [AWS::OrgUnit]`: the account's OUs are its parents. */
  orgUnits: boolean;
  /** The schema declares the group entity (GROUP_ENTITY_TYPE), and whether with `tags` (sent empty: a group has none). */
  group: false | { tags: boolean };
  /** The context attributes of issue 40 the schema declares (`reason_length`, `oncall`, `ticket`): only those are sent. */
  context: { reason_length: boolean; oncall: boolean; ticket: boolean };
}

const NO_ACCOUNT_SHAPE: AccountShape = { name: false, tags: false, orgUnits: false, group: false, context: { reason_length: false, oncall: false, ticket: false } };

/**
 * The Cedar entity type of an Identity Store group target. Not `AWS::IdentityStore::Group`: Cedar
 * refuses a namespaced type whose last name shadows the schema's own `Group` (the principal's groups).
 */
export const GROUP_ENTITY_TYPE = 'AWS::IdentityStoreGroup';

/** The Cedar entity type of an OU or root (`resource in AWS::OrgUnit::"ou-..."`). */
export const ORG_UNIT_TYPE = 'AWS::OrgUnit';

export interface PolicyDecision {
  readonly allowed: boolean;
  /** The determining policies' @id values. */
  readonly policyIds: readonly string[];
  /** The determining policies' @advice texts (only those that have one). */
  readonly notices: readonly string[];
}

/** A policy folder that cannot be used; the message names file, line, column and the error. */
export class PolicyLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyLoadError';
  }
}

/** One policy's text as cut from its file; cedar reports offsets relative to `text`. */
interface PolicySource {
  file: string;
  fileText: string;
  /** Index of `text` in `fileText`. */
  start: number;
  text: string;
  /** Index in `text` where the policy proper begins (after comments and blanks). */
  codeStart: number;
}

// Every load gets its own names in cedar-wasm's (process-wide) pre-parsed cache, so a reload
// never disturbs a PolicySet still in use. Old entries are never freed; reloads are rare.
let loadCount = 0;

/** What the decision memo of one policy set may hold, about: requests are mostly ASCII, a byte a character. */
export const MEMO_BYTES = 16 * 1024 * 1024;

export class PolicySet {
  /**
   * Decisions by request: a decision is a pure function of the request and this (immutable)
   * policy set, and a client ensuring the same access before every command asks the same thing
   * each time. Bounded in entries and in bytes (a request carries the caller's token claims, which
   * can be large); a reload makes a new PolicySet, and so a new memo.
   */
  private readonly decisions = new LRUCache<string, PolicyDecision>({
    max: 10_000,
    maxSize: MEMO_BYTES,
    // The key is the request; a decision is a few ids and notices, shared with the policy set.
    sizeCalculation: (_decision, key) => key.length + 256,
  });

  /** @internal built by loadPolicySet */
  constructor(
    private readonly policySetId: string,
    private readonly schemaName: string,
    /** @id -> load position, to report determining policies in a stable order */
    private readonly order: ReadonlyMap<string, number>,
    private readonly advice: ReadonlyMap<string, string>,
    /** @id -> its @approvals("N") */
    private readonly approvals: ReadonlyMap<string, number> = new Map(),
    /** What the policies are written against, for listings that decide one request per kind (see accountClass). */
    private readonly index: PolicyIndex = { namedAccounts: new Set(), namedOrgUnits: new Set(), numbers: [], read: null },
    private readonly accountShape: AccountShape = NO_ACCOUNT_SHAPE,
    /** The @id of each permit with @until_shift_end("true"). */
    private readonly shiftBound: ReadonlySet<string> = new Set(),
  ) {}

  /**
   * Whether what `policyIds` (the determining policies of an `activate` decision) allow ends with
   * the requester's on-call shift: one of them has @until_shift_end("true").
   */
  untilShiftEnd(policyIds: readonly string[]): boolean {
    return policyIds.some((id) => this.shiftBound.has(id));
  }

  /**
   * What the policies can tell of an account: the attributes of its entity (cedarRequest makes it:
   * its environment, and, where the schema declares them, its name, tags and OUs), and its id
   * only where a policy names the account (`Account::"..."`; its attributes still count, since
   * they change when it moves or is tagged). Cedar has no other way to look at an entity, so two
   * accounts of one class get the same decision for every request: a listing of thousands of
   * accounts decides one account per class, and the decision memo keeps one per class. Only what a
   * policy reads counts: its name and tags when a policy reads `name` or `tags`, of its OUs only
   * those a policy names. A change to the Account entity (an attribute, parents) is a change here too.
   */
  accountClass(accountId: string, environment: string, account?: AccountAttributes): string {
    const { name, tags, orgUnits } = this.accountShape;
    return JSON.stringify([
      this.index.namedAccounts.has(accountId) ? accountId : null,
      environment,
      name && this.reads('name') ? (account?.name ?? '') : null,
      tags && this.reads('tags') ? Object.entries(account?.tags ?? {}).sort() : null,
      orgUnits ? (account?.ou_path ?? []).filter((id) => this.index.read === null || this.index.namedOrgUnits.has(id)) : null,
    ]);
  }

  /**
   * The durations, below `max`, at which a decision can change as `duration_seconds` grows: every
   * number the policies hold and `also` (e.g. the session duration), and their neighbours. Where
   * policies compare the duration with numbers (`context.duration_seconds > 3600`), a decision is
   * the same between two of these, so the longest duration allowed is `max` or one of them.
   */
  durationSteps(max: number, also: number[] = []): number[] {
    const steps = new Set<number>();
    for (const n of [...this.index.numbers, ...also]) for (const d of [n - 1, n, n + 1]) if (d >= 1 && d < max) steps.add(d);
    return [...steps].sort((a, b) => b - a);
  }

  /**
   * Whether a policy (of that effect) reads an attribute of that name (`context.has_reason`,
   * `resource.environment`): if no permit reads `duration_seconds`, a request no permit allows at
   * one duration is allowed at none; if no policy reads `has_reason`, a reason changes nothing.
   */
  reads(attribute: string, effect?: 'permit' | 'forbid'): boolean {
    const { read } = this.index;
    if (!read) return true;
    return effect ? read.has(`${effect} ${attribute}`) : read.has(`permit ${attribute}`) || read.has(`forbid ${attribute}`);
  }

  /**
   * How many distinct reviewers must approve a request that `policyIds` (the determining policies
   * of its `request` decision) allowed: the largest of their `@approvals`, at least 1.
   */
  approvalsRequired(policyIds: readonly string[]): number {
    return Math.max(1, ...policyIds.map((id) => this.approvals.get(id) ?? 1));
  }

  authorize(req: PolicyRequest): PolicyDecision {
    // A schema from before group grants (a tenant's own copy): its policies were not written for groups.
    if (req.group && !this.accountShape.group) return NO_GROUP_ENTITY;
    // A group's whole request is its key; an account's key is made without its entities (memoKey).
    const groupRequest = req.group ? cedarRequest(req, this.accountShape) : undefined;
    const key = groupRequest ? JSON.stringify(groupRequest) : this.memoKey(req);
    let decision = this.decisions.get(key);
    if (!decision) {
      decision = this.decide(groupRequest ?? cedarRequest(req, this.accountShape));
      this.decisions.set(key, decision);
    }
    return decision;
  }

  /**
   * An account's request, with the account given by its class (accountClass) in place of its id
   * and entity: no policy can tell apart accounts of one class, so a page of 100 requests on 100
   * accounts of one class is one decision, not 100. Made without the account's entities, which
   * only a decision not yet remembered needs.
   */
  private memoKey(req: PolicyRequest): string {
    // The principal, as its entities are made of it; the context, as Cedar is sent it.
    return JSON.stringify([this.accountClass(req.accountId, req.accountEnvironment, req.account), req.principal, req.action, cedarContext(req.context, this.accountShape)]);
  }

  private decide(request: CedarRequest): PolicyDecision {
    const answer = cedar.statefulIsAuthorized({
      ...request,
      preparsedPolicySetId: this.policySetId,
      // Without the schema cedar would not know action groups (`action in ...`). The request's
      // shape was checked against it once at load (selfCheck); per call it costs ~15%.
      preparsedSchemaName: this.schemaName,
      validateRequest: false,
    });
    if (answer.type === 'failure') {
      // Not a policy outcome but a malformed request: a bug for the caller to see, not a deny.
      throw new Error(`cedar could not evaluate the request: ${answer.errors.map((e) => e.message).join('; ')}`);
    }
    const { decision, diagnostics } = answer.response;
    // A policy that fails to evaluate is skipped by cedar; a skipped forbid must not let
    // access through, so any error denies and the erroring policies count as determining.
    const failed = diagnostics.errors.map((e) => e.policyId);
    const ids = [...new Set([...diagnostics.reason, ...failed])];
    ids.sort((a, b) => (this.order.get(a) ?? 0) - (this.order.get(b) ?? 0));
    // Shared by every caller of the memo: frozen, so none can change another's.
    return Object.freeze({
      allowed: decision === 'allow' && failed.length === 0,
      policyIds: Object.freeze(ids),
      notices: Object.freeze(ids.flatMap((id) => this.advice.get(id) ?? [])),
    });
  }
}

/** What loadPolicySet notes of the policies' text for accountClass, durationSteps and reads. */
interface PolicyIndex {
  /** Account ids a policy names. */
  namedAccounts: ReadonlySet<string>;
  /** Root and OU ids a policy names (`AWS::OrgUnit::"..."`). */
  namedOrgUnits: ReadonlySet<string>;
  /** Every number in a policy. */
  numbers: readonly number[];
  /** `{effect} {attribute}` for every attribute a policy reads; null: not known (anything may be read). */
  read: ReadonlySet<string> | null;
}

/** Notes what one policy (cedar's JSON of it) names: accounts, numbers, and the attributes it reads. */
function indexPolicy(json: cedar.PolicyJson, into: { namedAccounts: Set<string>; namedOrgUnits: Set<string>; numbers: Set<number>; read: Set<string> }): void {
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node === null || typeof node !== 'object') return;
    const { type, id, Value, attr } = node as Record<string, unknown>;
    // An entity reference: `{type, id}` in a scope, `{"__entity": {type, id}}` in a condition.
    if (typeof type === 'string' && typeof id === 'string' && (type === 'Account' || type.endsWith('::Account'))) into.namedAccounts.add(id);
    if (typeof type === 'string' && typeof id === 'string' && type === ORG_UNIT_TYPE) into.namedOrgUnits.add(id);
    if (typeof Value === 'number') into.numbers.add(Value);
    if (typeof attr === 'string') into.read.add(`${json.effect} ${attr}`);
    Object.values(node).forEach(walk);
  };
  walk({ principal: json.principal, action: json.action, resource: json.resource, conditions: json.conditions });
}

export function loadPolicySet(dir: string): PolicySet {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch (e) {
    throw new PolicyLoadError(`${dir}: cannot read the policy folder: ${(e as Error).message}`);
  }
  const schemaFiles = names.filter((n) => n.endsWith('.cedarschema'));
  const policyFiles = names.filter((n) => n.endsWith('.cedar'));
  if (schemaFiles.length !== 1) {
    throw new PolicyLoadError(`${dir}: expected exactly one .cedarschema file, found ${schemaFiles.length}`);
  }
  if (policyFiles.length === 0) throw new PolicyLoadError(`${dir}: no .cedar policy files`);

  const schemaFile = path.join(dir, schemaFiles[0]);
  const schema = fs.readFileSync(schemaFile, 'utf8');
  const schemaParse = cedar.checkParseSchema(schema);
  if (schemaParse.type === 'failure') fail(schemaParse.errors.flatMap((e) => describe(e, schemaFile, schema, 0)));

  const problems: string[] = [];
  const byId = new Map<string, PolicySource>();
  const advice = new Map<string, string>();
  const approvals = new Map<string, number>();
  const shiftBound = new Set<string>();
  const index = { namedAccounts: new Set<string>(), namedOrgUnits: new Set<string>(), numbers: new Set<number>(), read: new Set<string>() };
  for (const name of policyFiles) {
    const file = path.join(dir, name);
    const fileText = fs.readFileSync(file, 'utf8');
    // Parse the whole file first: cedar's offsets then point into the file as written, and
    // the split below can trust that `;` ends a policy.
    const parsed = cedar.checkParsePolicySet({ staticPolicies: fileText });
    const fileErrors = parsed.type === 'failure' ? parsed.errors.flatMap((e) => describe(e, file, fileText, 0)) : [];
    // Some errors (a template among the policies) come without a place; policyToJson,
    // one policy at a time, gives one.
    const located = parsed.type === 'failure' && parsed.errors.every((e) => e.sourceLocations?.length);
    if (located) {
      problems.push(...fileErrors);
      continue;
    }
    const before = problems.length;
    for (const src of splitPolicies(file, fileText)) {
      const json = cedar.policyToJson(src.text);
      if (json.type === 'failure') {
        problems.push(...json.errors.flatMap((e) => describe(e, file, src.text, src.start, fileText, src.codeStart)));
        continue;
      }
      const where = at(fileText, src.start + src.codeStart);
      const id = json.json.annotations?.id;
      if (!id) {
        problems.push(`${file}:${where}: policy has no @id("...") annotation`);
        continue;
      }
      const first = byId.get(id);
      if (first) {
        problems.push(`${file}:${where}: duplicate @id("${id}"), first used at ${first.file}:${at(first.fileText, first.start + first.codeStart)}`);
        continue;
      }
      byId.set(id, src);
      indexPolicy(json.json, index);
      const text = json.json.annotations?.advice;
      if (text) advice.set(id, text);
      const approvalsText = json.json.annotations?.approvals;
      if (approvalsText !== undefined && approvalsText !== null) {
        if (!/^[1-9]\d{0,1}$/.test(approvalsText)) {
          problems.push(`${file}:${where}: @approvals("${approvalsText}") must be a whole number from 1 to 99`);
          continue;
        }
        approvals.set(id, Number(approvalsText));
      }
      const untilShiftEnd = json.json.annotations?.until_shift_end;
      if (untilShiftEnd !== undefined && untilShiftEnd !== null) {
        if (untilShiftEnd !== 'true' || json.json.effect !== 'permit') {
          problems.push(`${file}:${where}: @until_shift_end("true") is the only form, and only on a permit (it caps what the permit grants)`);
          continue;
        }
        shiftBound.add(id);
      }
    }
    if (problems.length === before) problems.push(...fileErrors);
  }
  if (problems.length > 0) fail(problems);

  const order = new Map([...byId.keys()].map((id, i) => [id, i]));
  // Keyed by @id so cedar's diagnostics name policies by their @id.
  const staticPolicies: Record<string, string> = {};
  for (const [id, src] of byId) staticPolicies[id] = src.text;

  const validation = cedar.validate({ schema, policies: { staticPolicies }, validationSettings: { mode: 'strict' } });
  if (validation.type === 'failure') {
    // The policies parsed above, so what is left to fail is resolving the schema.
    fail(validation.errors.flatMap((e) => describe(e, schemaFile, schema, 0)));
  }
  if (validation.validationErrors.length > 0) {
    // Cedar lists them in no particular order; file order reads better.
    const rank = ({ policyId, error }: cedar.ValidationError) =>
      (order.get(policyId) ?? 0) * 1e9 + (error.sourceLocations?.[0]?.start ?? 0);
    const sorted = [...validation.validationErrors].sort((a, b) => rank(a) - rank(b));
    fail(sorted.flatMap(({ policyId, error }) => {
      const src = byId.get(policyId);
      return src ? describe(error, src.file, src.text, src.start, src.fileText, src.codeStart) : [`${policyId}: ${error.message}`];
    }));
  }

  loadCount += 1;
  const policySetId = `jit-access-policies-${loadCount}`;
  const schemaName = `jit-access-schema-${loadCount}`;
  const cached = [cedar.preparseSchema(schemaName, schema), cedar.preparsePolicySet(policySetId, { staticPolicies })];
  for (const answer of cached) {
    if (answer.type === 'failure') fail(answer.errors.map((e) => `${dir}: ${e.message}`));
  }
  const accountShape = accountShapeOf(schema);
  selfCheck(policySetId, schemaName, schemaFile, accountShape);
  return new PolicySet(policySetId, schemaName, order, advice, approvals, { ...index, numbers: [...index.numbers] }, accountShape, shiftBound);
}

const NO_GROUP_ENTITY: PolicyDecision = Object.freeze({
  allowed: false,
  policyIds: Object.freeze([]),
  notices: Object.freeze([`This tenant's policy schema does not declare ${GROUP_ENTITY_TYPE}, so no policy decides group grants (docs/policies.md).`]),
});

/** What the schema's `Account` (in the unnamed namespace) declares of names, tags and OUs, and whether it declares the group entity. */
function accountShapeOf(schema: string): AccountShape {
  const answer = cedar.schemaToJson(schema);
  if (answer.type === 'failure') return NO_ACCOUNT_SHAPE;
  const [namespace, typeName] = [GROUP_ENTITY_TYPE.split('::').slice(0, -1).join('::'), GROUP_ENTITY_TYPE.split('::').at(-1)!];
  const group = answer.json[namespace]?.entityTypes?.[typeName] as { shape?: { attributes?: Record<string, unknown> } } | undefined;
  const account = answer.json['']?.entityTypes?.Account as { memberOfTypes?: string[]; shape?: { attributes?: Record<string, unknown> } } | undefined;
  const attributes = account?.shape?.attributes ?? {};
  // The `request` action's context: a record of its own, or a common type (EntitlementContext) that names one.
  type Shape = { type?: string; attributes?: Record<string, unknown> };
  const declared = answer.json['']?.actions?.request?.appliesTo?.context as Shape | undefined;
  const record = declared?.type === 'Record' ? declared : (answer.json['']?.commonTypes?.[declared?.type ?? ''] as Shape | undefined);
  const contextAttributes = record?.attributes ?? {};
  return {
    context: {
      reason_length: Object.hasOwn(contextAttributes, 'reason_length'),
      oncall: Object.hasOwn(contextAttributes, 'oncall'),
      ticket: Object.hasOwn(contextAttributes, 'ticket'),
    },
    name: Object.hasOwn(attributes, 'name'),
    tags: Object.hasOwn(attributes, 'tags'),
    orgUnits: (account?.memberOfTypes ?? []).includes(ORG_UNIT_TYPE),
    group: group ? { tags: Object.hasOwn(group.shape?.attributes ?? {}, 'tags') } : false,
  };
}

type CedarRequest = Omit<cedar.StatefulAuthorizationCall, 'preparsedPolicySetId' | 'preparsedSchemaName' | 'validateRequest'>;

/** The context as Cedar is sent it: what the schema declares, with its defaults. */
function cedarContext(context: PolicyRequest['context'], shape: AccountShape): CedarRequest['context'] {
  if (!Number.isSafeInteger(context.duration_seconds)) {
    // Cedar has only integers (Long); a fraction would fail deep inside with a vague message.
    throw new TypeError(`duration_seconds must be an integer, got ${context.duration_seconds}`);
  }
  return {
    role: context.role,
    duration_seconds: context.duration_seconds,
    has_reason: context.has_reason,
    has_ticket_attachment: context.has_ticket_attachment,
    break_glass: context.break_glass ?? false,
    scheduled: context.scheduled ?? false,
    starts_in_seconds: context.starts_in_seconds ?? 0,
    session_duration_seconds: context.session_duration_seconds ?? 0,
    // A schema from before issue 40 (a tenant's own copy) is sent what it declares, as for accounts.
    ...(shape.context.reason_length && { reason_length: context.reason_length ?? 0 }),
    ...(shape.context.oncall && { oncall: context.oncall ?? NOTHING_KNOWN.oncall }),
    ...(shape.context.ticket && { ticket: context.ticket ?? NOTHING_KNOWN.ticket }),
  };
}

function cedarRequest(req: PolicyRequest, shape: AccountShape): CedarRequest {
  const { principal } = req;
  const user = { type: 'User', id: principal.id };
  const account = { type: 'Account', id: req.accountId };
  const groups = [...new Set(principal.groups)].map((id) => ({ type: 'Group', id }));
  // Each OU's parent is the one above it, so `in` sees the hierarchy as AWS users know it.
  const ouPath = shape.orgUnits ? (req.account?.ou_path ?? []) : [];
  const orgUnits = ouPath.map((id, i): cedar.EntityJson => ({ uid: { type: ORG_UNIT_TYPE, id }, attrs: {}, parents: i > 0 ? [{ type: ORG_UNIT_TYPE, id: ouPath[i - 1] }] : [] }));
  const accountAttrs = {
    environment: req.accountEnvironment,
    ...(shape.name && { name: req.account?.name ?? '' }),
    // A set of {key, value}: `resource.tags.contains({key: "env", value: "prod"})`.
    ...(shape.tags && { tags: Object.entries(req.account?.tags ?? {}).sort().map(([key, value]) => ({ key, value })) }),
  };
  const resource = req.group ? { type: GROUP_ENTITY_TYPE, id: req.group.name } : account;
  const resourceEntities: cedar.EntityJson[] = req.group
    ? [{ uid: resource, attrs: { name: req.group.name, environment: req.group.environment, ...(shape.group && shape.group.tags && { tags: [] }) }, parents: [] }]
    : [...orgUnits, { uid: account, attrs: accountAttrs, parents: ouPath.length > 0 ? [{ type: ORG_UNIT_TYPE, id: ouPath.at(-1)! }] : [] }];
  return {
    principal: user,
    action: { type: 'Action', id: req.action },
    resource,
    context: cedarContext(req.context, shape),
    entities: [
      { uid: user, attrs: { email: principal.email ?? '' }, parents: groups },
      ...groups.map((uid): cedar.EntityJson => ({ uid, attrs: {}, parents: [] })),
      ...resourceEntities,
    ],
  };
}

/** Fails the load if the schema does not describe the request authorize() sends. */
function selfCheck(policySetId: string, schemaName: string, schemaFile: string, shape: AccountShape): void {
  const sample: PolicyRequest = {
    principal: { id: 'self-check', email: 'self-check@example.com', groups: ['self-check'] },
    action: 'request',
    accountId: '000000000000',
    accountEnvironment: 'unknown',
    account: { name: 'self-check', tags: { env: 'self-check' }, ou_path: ['r-self', 'ou-self-checkabc'] },
    context: { role: 'self-check', duration_seconds: 0, has_reason: false, has_ticket_attachment: false },
  };
  const samples = [sample, ...(shape.group ? [{ ...sample, accountId: '', account: undefined, group: { name: 'self-check', environment: 'unknown' } }] : [])];
  for (const [action, asked] of (['request', 'activate', 'review', 'revoke', 'audit'] as const).flatMap((a) => samples.map((s) => [a, s] as const))) {
    const answer = cedar.statefulIsAuthorized({
      ...cedarRequest({ ...asked, action }, shape),
      preparsedPolicySetId: policySetId,
      preparsedSchemaName: schemaName,
      validateRequest: true,
    });
    if (answer.type === 'failure') {
      fail(answer.errors.map((e) => `${schemaFile}: does not fit the "${action}" request the service sends: ${e.message}`));
    }
  }
}

function fail(problems: string[]): never {
  throw new PolicyLoadError(problems.join('\n'));
}

/**
 * Cuts a policy file into one text per policy, at each `;` outside strings and comments.
 * Each text keeps its leading comments so the pieces add up to the file.
 */
function splitPolicies(file: string, fileText: string): PolicySource[] {
  const out: PolicySource[] = [];
  let start = 0;
  let codeStart = -1;
  for (let i = 0; i < fileText.length; i++) {
    const ch = fileText[i];
    if (ch === '/' && fileText[i + 1] === '/') {
      const eol = fileText.indexOf('\n', i);
      i = eol < 0 ? fileText.length : eol;
    } else if (/\s/.test(ch)) {
      continue;
    } else {
      if (codeStart < 0) codeStart = i - start;
      if (ch === '"') {
        for (i++; i < fileText.length && fileText[i] !== '"'; i++) if (fileText[i] === '\\') i++;
      } else if (ch === ';') {
        out.push({ file, fileText, start, text: fileText.slice(start, i + 1), codeStart });
        start = i + 1;
        codeStart = -1;
      }
    }
  }
  // Only comments and blanks can follow the last `;` of a file that parsed.
  return out;
}

/** One line per cedar error (and related error): `file:line:column: message (label) help`. */
function describe(
  e: cedar.DetailedError, file: string, text: string, start: number, fileText = text, fallback = 0,
): string[] {
  const loc = e.sourceLocations?.[0];
  const offset = loc ? charIndex(text, loc.start) : fallback;
  const label = loc?.label ? ` (${loc.label})` : '';
  const help = e.help ? `; ${e.help}` : '';
  const line = `${file}:${at(fileText, start + offset)}: ${e.message}${label}${help}`;
  return [line, ...(e.related ?? []).flatMap((r) => describe(r, file, text, start, fileText, fallback))];
}

/** Cedar reports UTF-8 byte offsets; JS strings index UTF-16 units. */
function charIndex(text: string, byteOffset: number): number {
  return Buffer.from(text, 'utf8').subarray(0, byteOffset).toString('utf8').length;
}

/** `line:column`, both 1-based. */
function at(text: string, index: number): string {
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  const column = index - (before.lastIndexOf('\n') + 1) + 1;
  return `${line}:${column}`;
}
