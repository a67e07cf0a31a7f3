export { deadLetterReasonCodes, deadLetterSources, knownReasonCodes, type DeadLetterSource, type ReasonCodeInfo } from './reason-codes';
export {
  DeadLetterFilterError,
  filterIsEmpty,
  matchesFilter,
  parseDeadLetterFilter,
  parseDeadLetterId,
  type DeadLetterFilter,
  type RawDeadLetterFilter,
} from './filter';
export { DeadLetterNotFoundError, getDeadLetter, readDeadLetters, type ReadDeadLettersOptions, type StoredDeadLetter } from './reader';
export { decodeOriginal, stationRecordOf, viewOf, type DecodedOriginal, type DeadLetterView } from './view';
export {
  defaultLedgerBucket,
  RedriveLedger,
  settledOutcomes,
  type RedriveMark,
  type RedriveOutcome,
  type RedriveRoute,
  type RedriveRunRecord,
} from './ledger';
export {
  planRedrive,
  REDRIVE_OF_HEADER,
  RedriveError,
  redriveDeadLetters,
  type RedriveCounts,
  type RedriveItemReport,
  type RedriveOptions,
  type RedrivePlan,
  type RedriveProgress,
  type RedriveSummary,
} from './redrive';
