// The pages' translations: `_("Start lesson")` reads the catalog of the page's <html lang>, the
// same gettext catalog the templates use (served as JSON); an untranslated string reads in English.
// Placeholders are `{name}`: `format(_("{count} watching"), { count: 3 })`; plurals with `ngettext`.
const language = document.documentElement.lang || "en";
let catalog = {};

export async function loadMessages() {
  if (language.split("-")[0] === "en") return;
  try {
    const answer = await fetch(`/i18n/${encodeURIComponent(language)}.json`);
    if (answer.ok) catalog = await answer.json();
  } catch (_err) {
    // no catalog: English it is
  }
}

export function _(text) {
  const found = catalog[text];
  return typeof found === "string" ? found : text;
}

// `ngettext("{count} student watching", "{count} students watching", n)`: the language's form for n.
export function ngettext(singular, plural, count) {
  const forms = catalog[singular];
  const indices = (catalog[""] && catalog[""].plural) || {};
  if (Array.isArray(forms)) {
    const found = forms[indices[new Intl.PluralRules(language).select(count)]];
    if (found) return found;
  }
  return count === 1 ? singular : plural;
}

export function format(text, values) {
  return text.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}

export { language };

// Numbers, percentages and dates as the page's language writes them (the templates use Babel's).
export function formatNumber(value, options) {
  return new Intl.NumberFormat(language, options).format(value);
}

export function formatPercent(ratio) {
  return new Intl.NumberFormat(language, { style: "percent" }).format(ratio);
}

export function formatDuration(seconds) {
  const minutes = Math.floor(seconds / 60);
  const clock = (n) => new Intl.NumberFormat(language, { minimumIntegerDigits: 2 }).format(n);
  return `${new Intl.NumberFormat(language).format(Math.floor(minutes / 60))}:${clock(minutes % 60)}:${clock(Math.floor(seconds % 60))}`;
}

export function formatDateTime(date, options) {
  return new Intl.DateTimeFormat(language, options || { dateStyle: "short", timeStyle: "short" }).format(date);
}
