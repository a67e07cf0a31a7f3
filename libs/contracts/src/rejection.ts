import { RejectionCode, rejectionCodeToJSON } from './generated/tolls/ingest/v1/ingest_service';

/** Short name of a rejection code for metrics labels, dead letters and reports, e.g. "INVALID_FIELD". */
export const rejectionCodeName = (code: RejectionCode): string => rejectionCodeToJSON(code).replace(/^REJECTION_CODE_/, '');
