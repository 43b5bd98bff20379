// The language switch (templates/_language.html): remembers the choice for a year and reloads the page in it.
const COOKIE = "classbox_lang";

for (const select of document.querySelectorAll("select[data-language-switch]")) {
  select.addEventListener("change", () => {
    document.cookie = `${COOKIE}=${encodeURIComponent(select.value)}; path=/; max-age=31536000; SameSite=Lax`;
    window.location.reload();
  });
}
