// Option radios navigate to the item page with that option chosen (the original did this with jQuery
// from a CDN; this file is served locally so option clicks work offline).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input[type=radio][data-url]").forEach(function (radio) {
    radio.addEventListener("click", function () {
      window.location.href = radio.dataset.url;
    });
  });
});
