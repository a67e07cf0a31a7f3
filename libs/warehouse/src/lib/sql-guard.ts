/** Why a statement was refused by the read-only query endpoint. */
export class StatementNotAllowedError extends Error {
  override readonly name = 'StatementNotAllowedError';
}

const READ_ONLY_START = /^(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b/i;
/**
 * What would write or reach outside the warehouse even inside a statement that starts like a read:
 * INTO OUTFILE and table functions over files, URLs and other servers. (Writes and DDL cannot start
 * with the allowed keywords; the engine's readonly setting backs this up where it is set.)
 */
const FORBIDDEN = /\bINTO\s+OUTFILE\b|\b(file|url|s3|s3Cluster|gcs|hdfs|remote|remoteSecure|cluster|mysql|postgresql|mongodb|redis|sqlite|executable|azureBlobStorage|jdbc|odbc|input)\s*\(/i;

/** Removes comments and the contents of string literals and quoted identifiers (for the checks only). */
function withoutLiteralsAndComments(sql: string): string {
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i];
    const next = sql[i + 1];
    if (ch === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end;
      continue;
    }
    if (ch === '#' ) {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end;
      continue;
    }
    if (ch === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2);
      if (end === -1) throw new StatementNotAllowedError('unterminated comment');
      i = end + 2;
      out += ' ';
      continue;
    }
    if (ch === "'" || ch === '"' || ch === '`') {
      let j = i + 1;
      for (; j < sql.length; j++) {
        if (sql[j] === '\\') {
          j++;
          continue;
        }
        if (sql[j] === ch) {
          if (sql[j + 1] === ch) {
            j++;
            continue;
          }
          break;
        }
      }
      if (j >= sql.length) throw new StatementNotAllowedError('unterminated quoted text');
      out += ch === "'" ? "''" : `${ch}x${ch}`;
      i = j + 1;
      continue;
    }
    out += ch;
    i++;
  }
  return out;
}

/**
 * Accepts one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS) and returns it
 * without a trailing semicolon; throws StatementNotAllowedError for anything else: several
 * statements, writes, DDL, SET, INTO OUTFILE, table functions that reach files or other servers.
 * A guard for a convenience endpoint on a trusted port, behind a token: the ClickHouse server's own
 * users and `readonly` setting are the real access control for BI tools.
 */
export function readOnlyStatement(sql: string): string {
  const trimmed = sql.trim().replace(/;\s*$/, '').trim();
  if (trimmed.length === 0) throw new StatementNotAllowedError('empty statement');
  const bare = withoutLiteralsAndComments(trimmed).trim();
  if (bare.includes(';')) throw new StatementNotAllowedError('only one statement at a time');
  if (!READ_ONLY_START.test(bare)) {
    throw new StatementNotAllowedError('only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN and EXISTS statements are allowed');
  }
  const forbidden = FORBIDDEN.exec(bare);
  if (forbidden) throw new StatementNotAllowedError(`"${forbidden[0].replace(/\s*\($/, '(')}" is not allowed in a read-only query`);
  if (/\bFORMAT\s+\w+\s*$/i.test(bare)) throw new StatementNotAllowedError('leave out FORMAT: the caller chooses the output format');
  return trimmed;
}
