// exact-match, in JavaScript: attaches a message to the contacts and leads
// whose address appears on it (sender and recipients), compared
// case-insensitively, with optional plus-address folding (`ann+news@x` ->
// `ann@x`). A port of plugins/exact-match (Rust) that decides the same way;
// the tests hold the two (and the Python port) to it.
//
// Configuration (all optional):
//   { "fields": ["from", "sender", "reply-to", "to", "cc"],
//     "fold_plus": false,
//     "ignore": ["sales@our-company.example"] }
// `ignore` lists addresses never matched, typically the mailbox's own.

import { Plugin, PluginError, Verdict, address, exportPlugin } from 'intake-plugin-sdk';

const FIELDS = ['from', 'sender', 'reply-to', 'to', 'cc'];

class ExactMatch extends Plugin {
  static config = { fields: 'array', fold_plus: 'boolean', ignore: 'array' };

  constructor(config) {
    super(config);
    this.fields = config.fields ?? FIELDS;
    for (const field of this.fields) {
      if (!FIELDS.includes(field)) {
        throw new PluginError(
          `invalid configuration: unknown variant \`${field}\`, expected one of ${FIELDS.map((f) => `\`${f}\``).join(', ')}`,
        );
      }
    }
    if (this.fields.length === 0) throw new PluginError('`fields` is empty: nothing would ever match');
    this.foldPlus = config.fold_plus ?? false;
    this.ignore = (config.ignore ?? []).map(address.normalize);
  }

  *addresses(message) {
    for (const field of this.fields) {
      if (field === 'from') yield* message.from;
      else if (field === 'sender') {
        if (message.sender) yield message.sender;
      } else if (field === 'reply-to') yield* message.replyTo;
      else if (field === 'to') yield* message.to;
      else yield* message.cc;
    }
  }

  match(message, directory) {
    const seen = [];
    const parties = [];
    for (const mailbox of this.addresses(message)) {
      const addr = address.normalize(mailbox.address);
      if (addr === '' || seen.includes(addr) || this.ignore.includes(addr)) continue;
      let found = directory.findByAddress(addr).parties;
      if (found.length === 0 && this.foldPlus) {
        const folded = address.foldPlus(addr);
        if (folded !== addr && !this.ignore.includes(folded)) found = directory.findByAddress(folded).parties;
      }
      seen.push(addr);
      for (const party of found) {
        const ref = party.toRef();
        if (!parties.some((p) => p.equals(ref))) parties.push(ref);
      }
    }
    return Verdict.attach(parties);
  }
}

export const { lifecycle, matcher } = exportPlugin(ExactMatch, 'matcher');
