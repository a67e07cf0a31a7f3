import { RejectionCode, rejectionCodeName } from '@tollstream/contracts';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { knownReasonCodes } from './reason-codes';

// The list operators filter by (and the runbook explains) must hold every reason code a service uses:
// this reads the services' sources for the codes passed where dead letters are published.
const root = join(__dirname, '..', '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'generated' || name === 'node_modules' || name === '__fixtures__' ? [] : sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.spec.ts') ? [path] : [];
  });
}

it('knows every reason code the services dead-letter with', () => {
  const files = ['apps', 'libs'].flatMap((top) => readdirSync(join(root, top)).map((project) => join(root, top, project, 'src'))).filter((dir) => !dir.includes(join('libs', 'dead-letters')));
  const found = new Map<string, string>();
  // A dead-letter call and the 400 characters after it: its arguments, also when spread over lines.
  const call = /(reasonCode:|\.deadLetter\(|\bdead\(|rejectRecord\(|PoisonMessageError\(|\bpublish\(\s*'[A-Z])/g;
  for (const file of files.flatMap((dir) => { try { return sourceFiles(dir); } catch { return []; } })) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(call)) {
      const window = text.slice(match.index, match.index + 400).split(/\)\s*;/)[0];
      for (const literal of window.matchAll(/'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)'/g)) found.set(literal[1], relative(root, file));
    }
  }
  const ingestorCodes = Object.values(RejectionCode)
    .filter((code): code is RejectionCode => typeof code === 'number' && code > 0 && code !== RejectionCode.REJECTION_CODE_UNAVAILABLE && code !== RejectionCode.UNRECOGNIZED)
    .map(rejectionCodeName);
  for (const code of ingestorCodes) found.set(code, 'the ingestor (RejectionCode)');
  expect(found.size).toBeGreaterThan(15);
  expect([...found].filter(([code]) => !knownReasonCodes.has(code))).toEqual([]);
  expect([...knownReasonCodes].filter((code) => !found.has(code))).toEqual([]);
});
