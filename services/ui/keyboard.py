"""Review keyboard shortcuts: a small script put into the page with `st.html(unsafe_allow_javascript=True)`
(Streamlit's own HTML element; `components.v1.html` is deprecated). It presses the review buttons the page
already has (found by their widget keys), so every shortcut does exactly what clicking does."""

from __future__ import annotations

import streamlit as st

SHORTCUTS = {
    "j / →": "next picture",
    "k / ←": "previous picture",
    "a": "keep (and go to the next)",
    "x": "reject (and go to the next)",
    "c": "focus the caption",
    "Ctrl+Enter (in the caption)": "save the caption and go to the next",
    "Esc (in the caption)": "leave the caption (it saves)",
}

# One document-level listener for the page's lifetime; Streamlit may redraw the element on any rerun.
_PAGE_SCRIPT = r"""
(function () {
  const press = (key) => {
    const button = document.querySelector('.st-key-' + key + ' button');
    if (button && !button.disabled) { button.click(); return true; }
    return false;
  };
  const caption = () => document.querySelector('.st-key-caption_box textarea');
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    const typed = ['text', 'search', 'password', 'number', 'email', 'url', 'tel'];
    const typing = target && (target.tagName === 'TEXTAREA' || target.tagName === 'SELECT' ||
                              (target.tagName === 'INPUT' && typed.includes(target.type)) ||
                              target.isContentEditable);
    if (typing) {
      if (target === caption()) {
        if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
          // Streamlit commits the text on Ctrl+Enter itself (the caption autosaves); then move on.
          setTimeout(() => { target.blur(); press('kb_next'); }, 150);
        } else if (event.key === 'Escape') {
          target.blur();
        }
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const buttons = {j: 'kb_next', ArrowRight: 'kb_next', k: 'kb_prev', ArrowLeft: 'kb_prev',
                     a: 'kb_keep', x: 'kb_reject'};
    if (buttons[event.key]) {
      if (press(buttons[event.key])) event.preventDefault();
    } else if (event.key === 'c') {
      const box = caption();
      if (box) {
        event.preventDefault();
        box.focus();
        box.setSelectionRange(box.value.length, box.value.length);
      }
    }
  });
})();
"""


def review_shortcuts() -> None:
    """Install the shortcuts on the page (once: the script's guard keeps a single listener)."""
    guarded = "if (!window.__loraforgeKeys) { window.__loraforgeKeys = true; " + _PAGE_SCRIPT + " }"
    st.html(f"<script>{guarded}</script>", unsafe_allow_javascript=True, width="content")
