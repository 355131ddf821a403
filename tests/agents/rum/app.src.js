// The application of the RUM browser test (tests/rum_browser.rs), minified by terser into
// bundle.min.js and bundle.min.js.map (`npm run build`). A checkout that fails once the page
// has loaded: the error's stack frames point into the minified bundle, and the source map
// the test stores in the Elasticsearch stand-in maps them back here.
(function () {
  function computeTotal(items) {
    return items.reduce(function (sum, item) {
      return sum + item.price;
    }, 0);
  }

  function renderCheckout(cart) {
    var total = computeTotal(cart.items);
    if (!cart.currency) {
      throw new Error('checkout failed: no currency for a total of ' + total);
    }
    return total + ' ' + cart.currency;
  }

  function startCheckout() {
    renderCheckout({ items: [{ price: 3 }, { price: 4 }] });
  }

  window.addEventListener('load', function onLoad() {
    setTimeout(startCheckout, 0);
  });
})();
