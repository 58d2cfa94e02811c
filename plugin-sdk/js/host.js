// The engine's directory import, as componentize-js binds it. The only module
// besides log.js that names the contract's interfaces.
import { findByAddress, findByDomain, partiesForMessageId } from 'intake:plugin/directory@0.1.0';

export const hostDirectory = { findByAddress, findByDomain, partiesForMessageId };
