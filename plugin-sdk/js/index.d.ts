// Types of the Intake plugin SDK for TypeScript. The message view's fields
// are the contract's (wit/v0.1.0/plugin.wit) in camelCase, as componentize-js
// binds them; absent options are `undefined`.

export type PartyKind = 'contact' | 'lead';
export const CONTACT: 'contact';
export const LEAD: 'lead';

export interface Mailbox { name?: string; address: string }
export interface Header { name: string; value: string }
export interface Attachment { filename?: string; contentType: string; size: bigint; inline: boolean }
export interface Datetime { unixSeconds: bigint; offsetMinutes: number }
export type Origin =
  | { tag: 'imap'; val: { folder: string; uidValidity: number; uid: number } }
  | { tag: 'pop3'; val: string }
  | { tag: 'file'; val: string };

/** The read-only view of one message, with conveniences. */
export class Message {
  tenantId: string;
  accountId: string;
  origin: Origin;
  messageId?: string;
  inReplyTo: string[];
  references: string[];
  subject?: string;
  date?: Datetime;
  from: Mailbox[];
  sender?: Mailbox;
  replyTo: Mailbox[];
  to: Mailbox[];
  cc: Mailbox[];
  headers: Header[];
  contentType: string;
  textBody?: string;
  htmlBody?: string;
  bodiesTruncated: boolean;
  attachments: Attachment[];
  size: bigint;
  header(name: string): string | null;
  headersNamed(name: string): string[];
  senderMailbox(): Mailbox | null;
  senderAddress(): string | null;
  recipients(): Mailbox[];
  participants(): Mailbox[];
  threadIds(): string[];
  contentTypeParam(param: string): string | null;
  autoReplyReason(): string | null;
}

export class PartyRef {
  constructor(kind: PartyKind, id: string);
  kind: PartyKind;
  id: string;
  equals(other: unknown): boolean;
}

export class Party {
  kind: PartyKind;
  id: string;
  email: string;
  name: string | null;
  company: string | null;
  externalId: string | null;
  toRef(): PartyRef;
}

export interface LookupResult { parties: Party[]; truncated: boolean }

/** The tenant's directory; look-ups throw PluginError when it fails. */
export class Directory {
  findByAddress(address: string): LookupResult;
  findByDomain(domain: string): LookupResult;
  partiesForMessageId(messageId: string): LookupResult;
}

export class PluginError extends Error {}

export type ConfigType = 'string' | 'integer' | 'number' | 'boolean' | 'array' | 'object';

export class Plugin {
  /** The settings the configuration may give, name -> type. */
  static config?: Record<string, ConfigType>;
  constructor(config: Record<string, unknown>);
  config: Record<string, unknown>;
}

export type ServerAction = 'leave' | 'mark-seen' | 'delete' | `move:${string}`;

export class Verdict {
  outcome: 'no-opinion' | 'attach' | 'end-chain';
  parties: PartyRef[];
  terminal: 'discard' | 'quarantine' | 'keep-unlinked' | null;
  reason: string | null;
  serverAction: ServerAction | null;
  static noOpinion(): Verdict;
  static attach(parties: Array<Party | PartyRef>): Verdict;
  static discard(reason: string): Verdict;
  static quarantine(reason: string): Verdict;
  static keepUnlinked(): Verdict;
  withServerAction(action: ServerAction): Verdict;
}

export class PolicyVerdict {
  decision: 'create-lead' | 'quarantine' | 'discard' | 'keep-unlinked';
  email: string | null;
  name: string | null;
  company: string | null;
  reason: string | null;
  serverAction: ServerAction | null;
  static createLead(email: string, details?: { name?: string | null; company?: string | null }): PolicyVerdict;
  static quarantine(reason: string): PolicyVerdict;
  static discard(reason: string): PolicyVerdict;
  static keepUnlinked(): PolicyVerdict;
  withServerAction(action: ServerAction): PolicyVerdict;
}

export interface MatcherPlugin { match(message: Message, directory: Directory): Verdict }
export interface PolicyPlugin { unknownSender(message: Message, directory: Directory): PolicyVerdict }

export function parseConfig(text: string, declared?: Record<string, ConfigType>): Record<string, unknown>;
export function build<P extends Plugin>(plugin: new (config: Record<string, unknown>) => P, config: string): P;
export function exportPlugin(
  plugin: new (config: Record<string, unknown>) => Plugin,
  ...roles: Array<'matcher' | 'unknownSender'>
): { lifecycle: unknown; matcher?: unknown; unknownSender?: unknown };

export namespace address {
  const FREE_MAIL_DOMAINS: readonly string[];
  function trim(text: string): string;
  function normalize(address: string): string;
  function domain(address: string): string | null;
  function localPart(address: string): string | null;
  function foldPlus(address: string): string;
  function isValid(address: string): boolean;
  function isFreeMail(domain: string): boolean;
  function isRobot(address: string): boolean;
}

export namespace log {
  function trace(message: string): void;
  function debug(message: string): void;
  function info(message: string): void;
  function warn(message: string): void;
  function error(message: string): void;
}
