// Checks an event's inclusion proof in the browser, with Web Crypto only:
// RFC 6962 hashing (leaf SHA-256(0x00 || data), node SHA-256(0x01 || l || r)),
// the RFC 9162 inclusion-proof algorithm, and the checkpoint's Ed25519
// signature (a C2SP signed note) when the verifier key is known.

const enc = new TextEncoder();

async function sha256(...parts) {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const buf = new Uint8Array(len);
  let at = 0;
  for (const p of parts) { buf.set(p, at); at += p.length; }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
}

export const leafHash = (data) => sha256(Uint8Array.of(0), data);
const nodeHash = (left, right) => sha256(Uint8Array.of(1), left, right);

export function fromBase64(s) {
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function fromHex(s) {
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new Error(`not hexadecimal: ${s.slice(0, 20)}…`);
  return Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));
}

export function toHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// leafData reads a proof's leaf (the row's record hash), in hex or base64.
function leafData(leaf) {
  if (/^[0-9a-fA-F]{64}$/.test(leaf)) return fromHex(leaf);
  const b = fromBase64(leaf);
  if (b.length !== 32) throw new Error('the proof\'s leaf is not a 32-byte record hash');
  return b;
}

// rootFromInclusion computes the tree root a proof leads to from leaf hash
// `leaf` at `index` in a tree of `size` leaves (RFC 9162 §2.1.3.2). Indexes
// stay below 2^53, so plain numbers with division instead of bit shifts.
export async function rootFromInclusion(index, size, leaf, proof) {
  if (!(index >= 0 && index < size)) throw new Error(`leaf index ${index} is outside a tree of ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new Error('the proof is longer than the tree is deep');
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('the proof is shorter than the tree is deep');
  return r;
}

// parseCheckpoint reads a signed note: the checkpoint (origin, size, base64
// root, optional extension lines), a blank line, then signature lines
// "— <name> <base64(key id || signature)>".
export function parseCheckpoint(note) {
  const split = note.indexOf('\n\n');
  if (split < 0) throw new Error('the checkpoint is not a signed note (no blank line before its signatures)');
  const text = note.slice(0, split + 1);
  const lines = text.split('\n');
  if (lines.length < 4) throw new Error('the checkpoint needs an origin, a size and a root hash');
  const size = Number(lines[1]);
  if (!/^\d+$/.test(lines[1]) || !Number.isSafeInteger(size)) throw new Error(`checkpoint size ${lines[1]} is not a number`);
  const root = fromBase64(lines[2]);
  if (root.length !== 32) throw new Error('the checkpoint root is not 32 bytes');
  const signatures = [];
  for (const line of note.slice(split + 2).split('\n')) {
    if (!line) continue;
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new Error(`malformed signature line: ${line.slice(0, 40)}`);
    const raw = fromBase64(m[2]);
    if (raw.length < 5) throw new Error('a signature is too short');
    signatures.push({ name: m[1], keyId: raw.slice(0, 4), sig: raw.slice(4) });
  }
  return { text, origin: lines[0], size, root, signatures };
}

// parseVerifierKey reads <name>+<hex key id>+<base64(0x01 || Ed25519 key)>;
// the base64 may hold '+' itself, so only the first two separate.
async function parseVerifierKey(vkey) {
  const m = /^([^+\s]+)\+([0-9a-fA-F]{8})\+(\S+)$/.exec(vkey.trim());
  if (!m) throw new Error('the verifier key is not <name>+<key id>+<key>');
  const [, name, idHex, keyB64] = m;
  const key = fromBase64(keyB64);
  if (key.length !== 33 || key[0] !== 1) throw new Error('the verifier key is not an Ed25519 key');
  const id = (await sha256(enc.encode(name), Uint8Array.of(0x0a), key)).slice(0, 4);
  if (toHex(id) !== idHex.toLowerCase()) throw new Error('the verifier key\'s id does not match its key');
  return { name, id, pub: key.slice(1) };
}

// verifyCheckpointSignature checks the note's signature by the verifier key.
export async function verifyCheckpointSignature(cp, vkey) {
  const key = await parseVerifierKey(vkey);
  const sig = cp.signatures.find((s) => s.name === key.name && equal(s.keyId, key.id));
  if (!sig) throw new Error(`the checkpoint carries no signature by ${key.name}`);
  const pub = await crypto.subtle.importKey('raw', key.pub, { name: 'Ed25519' }, false, ['verify']);
  return crypto.subtle.verify({ name: 'Ed25519' }, pub, sig.sig, enc.encode(cp.text));
}

// checkProof runs every check and says what each found; it never throws.
// proof: {index, size, leaf, hashes: [base64], checkpoint}; recordHash: the
// event's, in hex; verifierKey: "" when unknown.
export async function checkProof(recordHash, proof, verifierKey) {
  const checks = [];
  const add = (name, ok, note) => checks.push({ name, ok, note });
  try {
    const data = leafData(String(proof.leaf));
    add('leaf', equal(data, fromHex(recordHash)), `the proof is for record hash ${toHex(data)}; the event's is ${recordHash}`);
    const cp = parseCheckpoint(String(proof.checkpoint));
    add('checkpoint', cp.size === Number(proof.size), `checkpoint of ${cp.origin} covers ${cp.size} rows; the proof is for a tree of ${proof.size}`);
    // A one-leaf tree has an empty path, which a Go server may send as null.
    const path = (proof.hashes || []).map(fromBase64);
    const root = await rootFromInclusion(Number(proof.index), Number(proof.size), await leafHash(data), path);
    add('root', equal(root, cp.root), `the proof leads to root ${toHex(root)}; the checkpoint states ${toHex(cp.root)}`);
    if (verifierKey) {
      let ok = false;
      let note = '';
      try {
        ok = await verifyCheckpointSignature(cp, verifierKey);
        note = ok ? `signed by ${verifierKey.split('+')[0]}` : 'the signature does not match the checkpoint';
      } catch (err) {
        note = err.message;
      }
      add('signature', ok, note);
    } else {
      add('signature', null, 'not checked: the worker does not publish its verifier key here');
    }
  } catch (err) {
    add('proof', false, err.message);
  }
  return { ok: checks.every((c) => c.ok !== false), checks };
}
