/** Errors of the memledger API, by the `type` of the server's error body (the Python `LedgerError` names). */

export class MemledgerError extends Error {
  /** HTTP status (0 when the server could not be reached). */
  readonly status: number;
  /** The server's error type, e.g. "NotFound", "InvalidRequest", "ConcurrencyConflict". */
  readonly type: string;
  readonly details: unknown;

  constructor(type: string, message: string, status: number, details?: unknown) {
    super(message);
    this.name = type;
    this.type = type;
    this.status = status;
    this.details = details;
  }
}

export class NotFound extends MemledgerError {}
export class InvalidRequest extends MemledgerError {}
export class AccessDenied extends MemledgerError {}
export class AuthenticationFailed extends AccessDenied {}
export class Conflict extends MemledgerError {}
/** A legal hold refused a delete, erase or redaction (HTTP 409); the refusal was recorded. */
export class LegalHold extends Conflict {
  /** The holds that cover what the operation would have changed. */
  get holdIds(): string[] {
    const ids = (this.details as { hold_ids?: unknown } | null | undefined)?.hold_ids;
    return Array.isArray(ids) ? ids.map(String) : [];
  }
}
export class ServiceUnreachable extends MemledgerError {}

/** Classes chosen by the error body's `type` before its status. */
const BY_TYPE: Record<string, typeof MemledgerError> = { LegalHold };

const BY_STATUS: Record<number, typeof MemledgerError> = {
  400: InvalidRequest,
  401: AuthenticationFailed,
  403: AccessDenied,
  404: NotFound,
  409: Conflict,
  413: InvalidRequest,
  422: InvalidRequest,
};

/** The error for a failed response and its decoded JSON body. */
export function errorFromResponse(status: number, body: unknown): MemledgerError {
  const detail = (body as { error?: { type?: string; message?: string; details?: unknown } } | null)?.error;
  const type = detail?.type ?? `HTTP${status}`;
  const cls = BY_TYPE[type] ?? BY_STATUS[status] ?? (status >= 500 ? ServiceUnreachable : MemledgerError);
  return new cls(type, detail?.message ?? `HTTP ${status}`, status, detail?.details);
}
