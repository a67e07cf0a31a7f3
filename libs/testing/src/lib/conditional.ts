import { reportSkippedSuite } from './mongo';

/** A suite that only applies under `condition`; otherwise it is skipped and the reason is printed and reported. */
export function describeIf(condition: boolean, name: string, reasonWhenSkipped: string, body: () => void): void {
  if (condition) {
    describe(name, body);
    return;
  }
  reportSkippedSuite(name, reasonWhenSkipped);
  describe.skip(name, body);
}

/** A test that only applies under `condition`; otherwise it is skipped and the reason is printed and reported. */
export function itIf(condition: boolean, name: string, reasonWhenSkipped: string, body: jest.ProvidesCallback): void {
  if (condition) {
    it(name, body);
    return;
  }
  reportSkippedSuite(name, reasonWhenSkipped);
  it.skip(name, body);
}
