import { Controller } from "@hotwired/stimulus"

// Sends on Enter (Shift+Enter for a new line), clears the box after a send, keeps the list scrolled down.
export default class extends Controller {
  static targets = ["input", "button", "list"]

  connect() {
    this.scrollToBottom()
  }

  submit(event) {
    if (event.shiftKey) return
    event.preventDefault()
    this.element.requestSubmit()
  }

  reset(event) {
    if (!event.detail.success) return
    if (this.hasInputTarget) this.inputTarget.value = ""
    this.scrollToBottom()
  }

  scrollToBottom() {
    const list = document.getElementById("messages")
    if (list) list.scrollTop = list.scrollHeight
  }
}
