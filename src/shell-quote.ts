// POSIX shell quoting, for commands tlsrec shows to people (curl commands in test files, the
// command line in a hint). Single quotes keep every character literal except the single quote
// itself, which is written as '\'' (end the quote, an escaped quote, quote again).

/** `s` as one shell word, always in single quotes. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * `s` as one argument: bare when it holds only characters no shell treats specially, else quoted.
 * Not for the command name, where a bare `a=b` would be an assignment.
 */
export function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : shellQuote(s);
}
