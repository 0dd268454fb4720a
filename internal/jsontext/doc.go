// Package jsontext reads and writes JSON text the way the audit worker needs
// it, without decoding values it does not look at:
//
//   - Check validates a whole document (RFC 8259, UTF-8) in one pass;
//   - SplitObject splits an object into its members, keeping each value's
//     exact bytes, and refuses duplicate keys at every depth;
//   - AppendJSString, FormatJSNumber and Unquote render and read strings and
//     numbers exactly as JavaScript's JSON.stringify and JSON.parse do, which
//     the producer hash is defined over.
//
// Strings are most of an event's bytes: the scanners step over them a word
// (8 bytes) at a time.
package jsontext
