/**
 * `format` -> the regular expression whose strings the service generates for it: a subset of each format
 * that ajv-formats (full mode) accepts, kept simple so its DFA is small. Days stop at 28 (valid in every
 * month and year), times carry a zone (date-time requires one), labels stay short enough for hostname's
 * 253-character limit, ipv6 is the full eight-group form.
 */
const D2 = "(?:0[1-9]|1[0-9]|2[0-8])";
const MONTH = "(?:0[1-9]|1[0-2])";
const DATE = `(?:19|20)\\d\\d-${MONTH}-${D2}`;
const ZONE = "(?:Z|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)";
const TIME = `(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d{1,6})?${ZONE}`;
const LABEL = "[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?";
const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const HEX4 = "[0-9a-f]{1,4}";
const N = "\\d{1,4}";

export const FORMATS: Readonly<Record<string, string>> = {
  "date-time": `^${DATE}T${TIME}$`,
  date: `^${DATE}$`,
  time: `^${TIME}$`,
  duration: `^P(?:(?:${N}Y)?(?:${N}M)?${N}D(?:T${N}H(?:${N}M)?(?:${N}S)?)?|${N}W|T${N}H(?:${N}M)?(?:${N}S)?)$`,
  email: `^[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?(?:\\.[a-z0-9]{1,12})?@${LABEL}(?:\\.${LABEL}){0,2}\\.[a-z]{2,6}$`,
  hostname: `^${LABEL}(?:\\.${LABEL}){0,4}$`,
  ipv4: `^${OCTET}(?:\\.${OCTET}){3}$`,
  ipv6: `^${HEX4}(?::${HEX4}){7}$`,
  uuid: "^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
};

/**
 * Patterns that zod 4 emits beside a format, which the pattern compiler cannot parse (lookaround), and
 * which every string of that format's regex above matches (pinned by a test): the pattern is then implied.
 */
export const IMPLIED_PATTERNS: Readonly<Record<string, string>> = {
  "^P(?:(\\d+W)|(?!.*W)(?=\\d|T\\d)(\\d+Y)?(\\d+M)?(\\d+D)?(T(?=\\d)(\\d+H)?(\\d+M)?(\\d+([.,]\\d+)?S)?)?)$":
    "duration",
};
