// The page's check of one Run-form value, by the rules of kestra_trio/model/inputs.py (the
// API checks again and its message is shown when it refuses). Values are sent as text, as
// `--input NAME=VALUE` takes them. Returns a problem, or null.
const TRUE = ["true", "yes", "y", "on", "1"], FALSE = ["false", "no", "n", "off", "0"];

export function checkInput(spec, value) {
  const name = JSON.stringify(spec.name);
  if (value === "") return spec.required ? `input ${name} is required` : null;
  const text = value.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
  switch (spec.type) {
    case "integer":
      return /^[+-]?[0-9]+$/.test(text) ? null : `input ${name} must be an integer`;
    case "number":
      return /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(text) && Number.isFinite(Number(text)) ? null : `input ${name} must be a number`;
    case "boolean":
      return [...TRUE, ...FALSE].includes(text.toLowerCase()) ? null : `input ${name} must be true or false`;
    case "json":
      try { JSON.parse(value); return null; } catch (err) { return `input ${name} must be JSON (${err.message})`; }
    default:
      return null;
  }
}
