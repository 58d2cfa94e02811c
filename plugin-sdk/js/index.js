// Write Intake e-mail plugins in JavaScript or TypeScript (componentize-js).
//
// The same shape as the Rust SDK (`intake-plugin-sdk`): extend `Plugin`,
// take the binding's JSON configuration in the constructor, implement
// `match(message, directory)` (the matcher role) and/or
// `unknownSender(message, directory)` (the unknown-sender policy), and
// export the class once from the app module:
//
//   import { Plugin, Verdict, address, exportPlugin } from 'intake-plugin-sdk';
//
//   class SenderMatch extends Plugin {
//     static config = { ignore: 'array' };
//     constructor(config) {
//       super(config);
//       this.ignore = (config.ignore ?? []).map(address.normalize);
//     }
//     match(message, directory) {
//       const sender = message.senderAddress();
//       if (sender === null || this.ignore.includes(address.normalize(sender))) {
//         return Verdict.noOpinion();
//       }
//       return Verdict.attach(directory.findByAddress(sender).parties);
//     }
//   }
//
//   export const { lifecycle, matcher } = exportPlugin(SenderMatch, 'matcher');
//
// Build it with `node SDK/build.mjs app.js -o my_plugin.wasm` (componentize-js
// with the WASI features the engine does not grant left out); `intake plugin
// new NAME --lang js` writes a project that does this. The engine makes a
// fresh instance for every message and calls `init` (here: the constructor)
// first, so nothing survives between messages. A thrown `PluginError` (or
// any other error) is a plugin failure: the binding's failure policy applies
// and the operator reads its message.

import * as address from './address.js';
import * as log from './log.js';
import { hostDirectory } from './host.js';

export { address, log };

/** The `kind` of a party the CRM tracks as a contact. */
export const CONTACT = 'contact';
/** The `kind` of a prospective customer. */
export const LEAD = 'lead';

/** A plugin's failure, shown to the operator. */
export class PluginError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PluginError';
  }
}

/**
 * Base class of a plugin. `static config` declares the settings the
 * configuration may give, name -> type ('string', 'integer', 'number',
 * 'boolean', 'array' or 'object'); another key, or a value of the wrong type,
 * is refused before the constructor runs, with the field named. Leave it
 * undefined to check nothing.
 */
export class Plugin {
  constructor(config) {
    this.config = config;
  }
}

const TYPES = {
  string: (v) => typeof v === 'string',
  integer: (v) => Number.isInteger(v),
  number: (v) => typeof v === 'number',
  boolean: (v) => typeof v === 'boolean',
  array: (v) => Array.isArray(v),
  object: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
};

/** The binding's JSON configuration as an object, checked against `declared`. */
export function parseConfig(text, declared) {
  let config;
  try {
    config = JSON.parse(text.trim() === '' ? '{}' : text);
  } catch (e) {
    throw new PluginError(`invalid configuration: ${e.message}`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new PluginError('invalid configuration: expected a JSON object');
  }
  if (declared === undefined) return config;
  for (const [key, value] of Object.entries(config)) {
    const wanted = declared[key];
    if (wanted === undefined) {
      const expected = Object.keys(declared).map((k) => `\`${k}\``).join(', ');
      throw new PluginError(`invalid configuration: unknown field \`${key}\`, expected one of ${expected}`);
    }
    const check = TYPES[wanted];
    if (check === undefined) {
      throw new PluginError(`config declares \`${key}\` as ${wanted}; use one of ${Object.keys(TYPES).join(', ')}`);
    }
    if (!check(value)) {
      const article = 'aeiou'.includes(wanted[0]) ? 'an' : 'a';
      throw new PluginError(`invalid configuration: \`${key}\` must be ${article} ${wanted}`);
    }
  }
  return config;
}

/** A reference to a party: what `Verdict.attach` takes. */
export class PartyRef {
  constructor(kind, id) {
    this.kind = kind;
    this.id = id;
  }
  /** True if `other` names the same party. */
  equals(other) {
    return other instanceof PartyRef && other.kind === this.kind && other.id === this.id;
  }
}

/** A party as the directory knows it; `kind` is 'contact' or 'lead'. */
export class Party {
  constructor({ kind, id, email, name, company, externalId }) {
    this.kind = kind;
    this.id = id;
    this.email = email;
    this.name = name ?? null;
    this.company = company ?? null;
    this.externalId = externalId ?? null;
  }
  /** The reference a matcher returns to attach a message to this party. */
  toRef() {
    return new PartyRef(this.kind, this.id);
  }
}

/**
 * The tenant's CRM directory. Look-ups throw a `PluginError` when the
 * directory is unavailable or refuses the argument; let it propagate to fail
 * the message, or catch it to carry on.
 */
export class Directory {
  constructor(host = hostDirectory) {
    this.host = host;
  }
  /** Contacts and leads whose address equals `address` (case-insensitive; no plus folding). */
  findByAddress(address) {
    return this.#lookup('findByAddress', address);
  }
  /** Contacts and leads whose address is in `domain`. */
  findByDomain(domain) {
    return this.#lookup('findByDomain', domain);
  }
  /** The parties already linked to the earlier message with this Message-ID. */
  partiesForMessageId(messageId) {
    return this.#lookup('partiesForMessageId', messageId);
  }
  #lookup(what, argument) {
    let result;
    try {
      result = this.host[what](argument);
    } catch (e) {
      const error = e?.payload ?? e;
      if (error?.tag === 'unavailable') throw new PluginError(`directory unavailable: ${error.val}`);
      if (error?.tag === 'invalid-argument') throw new PluginError(`directory look-up refused: ${error.val}`);
      throw e;
    }
    return { parties: result.parties.map((p) => new Party(p)), truncated: result.truncated };
  }
}

/**
 * The read-only view of one message, with conveniences. Every field of the
 * contract's `message` record is a property, in camelCase (`from`, `replyTo`,
 * `inReplyTo`, `textBody`, ...); absent options are `undefined`.
 */
export class Message {
  constructor(record) {
    Object.assign(this, record);
  }
  /** The first header with this name (case-insensitive), as written, or null. */
  header(name) {
    const wanted = name.toLowerCase();
    const found = this.headers.find((h) => h.name.toLowerCase() === wanted);
    return found ? found.value : null;
  }
  /** Every header with this name (case-insensitive), in message order. */
  headersNamed(name) {
    const wanted = name.toLowerCase();
    return this.headers.filter((h) => h.name.toLowerCase() === wanted).map((h) => h.value);
  }
  /** The first `From:` mailbox, else `Sender:`, else null. */
  senderMailbox() {
    return this.from[0] ?? this.sender ?? null;
  }
  /** The address that sent the message: the first `From:` mailbox, else `Sender:`. */
  senderAddress() {
    return this.senderMailbox()?.address ?? null;
  }
  /** `To:` and `Cc:` mailboxes. */
  recipients() {
    return [...this.to, ...this.cc];
  }
  /** Everyone on the message: From, Sender, Reply-To, To, Cc. */
  participants() {
    return [...this.from, ...(this.sender ? [this.sender] : []), ...this.replyTo, ...this.recipients()];
  }
  /** Ids of earlier messages in the thread, nearest first, without duplicates. */
  threadIds() {
    const ids = [];
    for (const id of [...this.inReplyTo, ...[...this.references].reverse()]) {
      if (!ids.includes(id)) ids.push(id);
    }
    return ids;
  }
  /** A parameter of the `Content-Type` header, unquoted, or null. */
  contentTypeParam(param) {
    const value = this.header('Content-Type');
    if (value === null) return null;
    for (const part of value.split(';').slice(1)) {
      const eq = part.indexOf('=');
      if (eq >= 0 && part.slice(0, eq).trim().toLowerCase() === param.toLowerCase()) {
        return part.slice(eq + 1).trim().replace(/^"+|"+$/g, '');
      }
    }
    return null;
  }
  /**
   * Why this message looks machine-generated (auto-reply, bulk mail, mailing
   * list, delivery report, robot sender), or null; the text is the Rust SDK's.
   */
  autoReplyReason() {
    const submitted = this.header('Auto-Submitted');
    if (submitted !== null) {
      const v = address.trim(submitted);
      if (v !== '' && v.toLowerCase() !== 'no') return `Auto-Submitted: ${v}`;
    }
    const report = this.contentTypeParam('report-type');
    if (this.contentType.toLowerCase() === 'multipart/report' && report?.toLowerCase() === 'delivery-status') {
      return 'delivery status notification';
    }
    const precedence = this.header('Precedence');
    if (precedence !== null && ['bulk', 'junk', 'list'].includes(address.trim(precedence).toLowerCase())) {
      return `Precedence: ${address.trim(precedence).toLowerCase()}`;
    }
    for (const name of ['X-Autoreply', 'X-Autorespond', 'X-Auto-Reply']) {
      if (this.header(name) !== null) return `${name} header`;
    }
    const list = this.header('List-Id');
    if (list !== null) return `mailing list ${address.trim(list)}`;
    const sender = this.senderAddress();
    if (sender !== null && address.isRobot(sender)) return `robot sender ${sender}`;
    return null;
  }
}

/** Checks `leave`, `mark-seen`, `delete` or `move:FOLDER`. */
function checkServerAction(action) {
  const spelled = address.trim(action);
  if (['leave', 'mark-seen', 'delete'].includes(spelled)) return spelled;
  if (spelled.startsWith('move:') && address.trim(spelled.slice(5)) !== '') return spelled;
  throw new PluginError(`unknown server action ${JSON.stringify(spelled)} (expected leave, mark-seen, delete or move:FOLDER)`);
}

/**
 * A matcher's answer; build one with the static methods. `outcome` is
 * 'no-opinion', 'attach' (`parties`) or 'end-chain' (`terminal`: 'discard',
 * 'quarantine' or 'keep-unlinked', with `reason`).
 */
export class Verdict {
  constructor(outcome, { parties = [], terminal = null, reason = null } = {}) {
    this.outcome = outcome;
    this.parties = parties;
    this.terminal = terminal;
    this.reason = reason;
    this.serverAction = null;
  }
  /** Nothing to say: the next matcher runs. */
  static noOpinion() {
    return new Verdict('no-opinion');
  }
  /** Attach to these parties (references or parties); an empty list is no opinion. */
  static attach(parties) {
    const refs = parties.map((p) => (p instanceof Party ? p.toRef() : p));
    return refs.length === 0 ? Verdict.noOpinion() : new Verdict('attach', { parties: refs });
  }
  /** End the chain and discard the message, logging `reason`. */
  static discard(reason) {
    return new Verdict('end-chain', { terminal: 'discard', reason });
  }
  /** End the chain and quarantine the message with `reason`. */
  static quarantine(reason) {
    return new Verdict('end-chain', { terminal: 'quarantine', reason });
  }
  /** End the chain and store the message without links. */
  static keepUnlinked() {
    return new Verdict('end-chain', { terminal: 'keep-unlinked' });
  }
  /** Suggests a server action: 'leave', 'mark-seen', 'delete' or 'move:FOLDER'. */
  withServerAction(action) {
    this.serverAction = checkServerAction(action);
    return this;
  }
}

/**
 * An unknown-sender policy's answer. `decision` is 'create-lead' (`email`,
 * `name`, `company`), 'quarantine', 'discard' (`reason`) or 'keep-unlinked'.
 */
export class PolicyVerdict {
  constructor(decision, { email = null, name = null, company = null, reason = null } = {}) {
    this.decision = decision;
    this.email = email;
    this.name = name;
    this.company = company;
    this.reason = reason;
    this.serverAction = null;
  }
  /** Create a lead and attach the message to it. */
  static createLead(email, { name = null, company = null } = {}) {
    return new PolicyVerdict('create-lead', { email, name, company });
  }
  /** Quarantine the message with `reason`. */
  static quarantine(reason) {
    return new PolicyVerdict('quarantine', { reason });
  }
  /** Discard the message, logging `reason`. */
  static discard(reason) {
    return new PolicyVerdict('discard', { reason });
  }
  /** Store the message without links (the default policy). */
  static keepUnlinked() {
    return new PolicyVerdict('keep-unlinked');
  }
  /** Suggests a server action; see `Verdict.withServerAction`. */
  withServerAction(action) {
    this.serverAction = checkServerAction(action);
    return this;
  }
}

/** Builds a plugin from its JSON configuration (shared by `init` and tests). */
export function build(PluginClass, config) {
  return new PluginClass(parseConfig(config, PluginClass.config));
}

// The contract's spellings, at the edge.
function toWitAction(action) {
  if (action === null || action === undefined) return undefined;
  const spelled = checkServerAction(action);
  if (spelled.startsWith('move:')) return { tag: 'move-to', val: address.trim(spelled.slice(5)) };
  return { tag: spelled };
}

function toWitRef(ref) {
  if (ref.kind !== CONTACT && ref.kind !== LEAD) {
    throw new PluginError(`party ${JSON.stringify(ref.id)} has kind ${JSON.stringify(ref.kind)} (expected contact or lead)`);
  }
  return { kind: ref.kind, id: ref.id };
}

function toWitVerdict(v) {
  if (!(v instanceof Verdict)) throw new PluginError(`match() returned ${typeof v}, not a Verdict`);
  let outcome;
  if (v.outcome === 'attach') outcome = { tag: 'attach', val: v.parties.map(toWitRef) };
  else if (v.outcome === 'end-chain') {
    outcome = { tag: 'end-chain', val: v.terminal === 'keep-unlinked' ? { tag: 'keep-unlinked' } : { tag: v.terminal, val: v.reason } };
  } else outcome = { tag: 'no-opinion' };
  return { outcome, serverAction: toWitAction(v.serverAction) };
}

function toWitPolicy(v) {
  if (!(v instanceof PolicyVerdict)) throw new PluginError(`unknownSender() returned ${typeof v}, not a PolicyVerdict`);
  let decision;
  if (v.decision === 'create-lead') {
    decision = { tag: 'create-lead', val: { email: v.email, name: v.name ?? undefined, company: v.company ?? undefined } };
  } else if (v.decision === 'keep-unlinked') decision = { tag: 'keep-unlinked' };
  else decision = { tag: v.decision, val: v.reason };
  return { decision, serverAction: toWitAction(v.serverAction) };
}

// An error out of the plugin, as the operator reads it: a PluginError's
// message, or any other error's name and message.
function failure(e) {
  if (e instanceof PluginError) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

/**
 * The component's exports for `PluginClass` and the roles named ('matcher',
 * 'unknownSender'). Export them from the app module under exactly these
 * names:
 *
 *   export const { lifecycle, matcher } = exportPlugin(MyPlugin, 'matcher');
 *
 * The world to build is matcher-plugin, unknown-sender-plugin or full-plugin
 * to match (build.mjs picks it from the roles the module exports).
 */
export function exportPlugin(PluginClass, ...roles) {
  if (roles.length === 0) throw new TypeError("exportPlugin(): name the roles, e.g. exportPlugin(MyPlugin, 'matcher')");
  // The plugin built by `init`: the engine makes a fresh instance per
  // message and calls `init` first, so this lives for one message.
  let plugin = null;
  const directory = new Directory();
  const call = (method, record, convert) => {
    if (plugin === null) throw 'plugin used before init';
    try {
      return convert(plugin[method](new Message(record), directory));
    } catch (e) {
      throw failure(e);
    }
  };
  const exports = {
    lifecycle: {
      init(config) {
        try {
          plugin = build(PluginClass, config);
        } catch (e) {
          throw failure(e);
        }
      },
    },
  };
  for (const role of roles) {
    if (role === 'matcher') {
      if (typeof PluginClass.prototype.match !== 'function') throw new TypeError(`${PluginClass.name} exports matcher but has no match()`);
      exports.matcher = { matchMessage: (m) => call('match', m, toWitVerdict) };
    } else if (role === 'unknownSender') {
      if (typeof PluginClass.prototype.unknownSender !== 'function') {
        throw new TypeError(`${PluginClass.name} exports unknownSender but has no unknownSender()`);
      }
      exports.unknownSender = { decide: (m) => call('unknownSender', m, toWitPolicy) };
    } else {
      throw new TypeError(`unknown role ${JSON.stringify(role)} (expected matcher or unknownSender)`);
    }
  }
  return exports;
}
