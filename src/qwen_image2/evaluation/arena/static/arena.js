// Voting posts the choice, then reveals which model made each image. The battle itself is rendered by
// the server, so the page works as plain HTML until the vote.
(function () {
  const battle = document.getElementById("battle");
  if (!battle) return;
  const buttons = document.querySelectorAll("#vote-buttons button");
  const errorBox = document.getElementById("vote-error");

  async function vote(choice, button) {
    buttons.forEach((b) => (b.disabled = true));
    errorBox.hidden = true;
    const response = await fetch("/api/vote", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ battle_id: battle.dataset.battleId, choice: choice }),
    });
    const body = await response.json().catch(() => ({ error: "unreadable answer from the server" }));
    if (!response.ok) {
      errorBox.textContent = body.error || "vote refused";
      errorBox.hidden = false;
      return;
    }
    button.classList.add("chosen");
    for (const side of ["left", "right"]) {
      const label = document.getElementById("model-" + side);
      label.textContent = body[side];
      label.classList.add("revealed");
    }
    if (choice === "left" || choice === "right") {
      document.getElementById("candidate-" + choice).classList.add("winner");
    }
    document.getElementById("after").hidden = false;
  }

  buttons.forEach((button) => button.addEventListener("click", () => vote(button.dataset.choice, button)));
})();
