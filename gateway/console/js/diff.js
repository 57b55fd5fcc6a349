// @ts-check
// What a version changed, field by field: every leaf of two definitions by its path
// ("action.points", "event_types[1]"), with its value before and after.
function leaves(value, path = "", into = new Map()) {
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [`[${i}]`, v]) : Object.entries(value).map(([k, v]) => [path ? `.${k}` : k, v]);
    if (!entries.length) into.set(path, Array.isArray(value) ? "[]" : "{}");
    for (const [key, v] of entries) leaves(v, `${path}${key}`, into);
  } else {
    into.set(path, value === null || value === undefined ? "" : String(value));
  }
  return into;
}

// [[path, before, after]] for each field that differs, in path order; "version" left out.
export function fieldDiff(before, after) {
  const a = leaves(before), b = leaves(after);
  return [...new Set([...a.keys(), ...b.keys()])].filter((path) => path !== "version" && a.get(path) !== b.get(path))
    .sort().map((path) => [path, a.get(path) ?? "", b.get(path) ?? ""]);
}
