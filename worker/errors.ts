/**
 * Errors in the OpenAI/Mistral shape: {"error": {"message", "type", "param", "code"}}.
 * Throw ApiError anywhere in a handler; the app's onError renders it. Anything else becomes
 * a generic 500 with no internals.
 */
import type { ErrorResponse, ErrorType } from "../contract/api-common";

export type { ErrorType } from "../contract/api-common";
/** The body of every error response (contract/api-common.ts ErrorResponse). */
export type ErrorBody = ErrorResponse;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = "invalid_request") =>
  new ApiError(400, message, "invalid_request_error", code, param);

export const unauthorized = (message = "Invalid or missing API key.") =>
  new ApiError(401, message, "authentication_error", "invalid_api_key");

export const notFound = (message: string, code: string | null = "not_found") =>
  new ApiError(404, message, "not_found_error", code);

export const internalError = () =>
  new ApiError(500, "The server had an error processing your request.", "api_error", "internal_error");
