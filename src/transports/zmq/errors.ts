/** Error codes of bridge protocol v1, as they travel on the wire. */
export const ERROR_CODES = ['invalid', 'busy', 'stale', 'incompatible', 'internal'] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** What a client can see: a server's error code, or a failure on the client's side. */
export type BridgeErrorCode = ErrorCode | 'timeout' | 'closed';

import { VlaError } from '../../errors.js';

/**
 * A request the bridge could not answer with a result. On the server it becomes an `error` reply
 * with the same `code`, `message` and `field`; the client throws it when such a reply arrives, when
 * a request times out (`timeout`) or when the client is closed (`closed`). A {@link VlaError}
 * whose `code` is the wire's (or `timeout`, `closed`).
 */
export class BridgeError extends VlaError<BridgeErrorCode> {
  /** `options.field`: the request field the error is about, e.g. `images[0].width`. */
  constructor(
    code: BridgeErrorCode,
    message: string,
    options: { readonly field?: string | undefined; readonly cause?: unknown } = {},
  ) {
    super(code, message, {
      ...(options.field === undefined ? {} : { field: options.field }),
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
  }
}
