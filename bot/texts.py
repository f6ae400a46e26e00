"""Every sentence the bot says, in one place, as plain text (no parse mode: user input such as
concept names and error texts is shown as is, so nothing needs escaping).

Constants for fixed replies, small functions for replies with values in them.
"""

from __future__ import annotations

from collections.abc import Sequence

from oneword.jobs import (
    EditPayload,
    JobKind,
    LearnPayload,
    MixedPhotos,
    WordCheck,
    advice_in,
    from_json,
)
from oneword.limits import LEARN_PHOTOS
from oneword.names import NAME_RULE, quoted
from storage import Job, JobState, StoredConcept
from storage.jobs import LEASE_EXPIRED_ERROR

MIN_PHOTOS, MAX_PHOTOS = LEARN_PHOTOS.least, LEARN_PHOTOS.most  # the engine's rule too
PHOTO_RANGE = f"{MIN_PHOTOS}-{MAX_PHOTOS}"

# ------------------------------------------------------------------------ start and help

START = (
    "Hi {name}! I'm OneWord. Show me a thing (your dog, your mug, a drawing style) in "
    f"{PHOTO_RANGE} "
    "photos and give it a name: I learn it as one new word. Then use that word on any photo: "
    "\"add mochi\", \"replace dog with mochi\", \"restyle as mochi\", \"remove the man\", or "
    "turn a photo into a sticker.\n\n"
    "Start with /learn <name>, or see /help for examples."
)

HELP = (
    "How to use OneWord\n\n"
    "1. Teach me a word\n"
    f"/learn mochi - then send {PHOTO_RANGE} photos of it (an album is easiest; photos sent as "
    "files work too). Add object, person or style after the name if it's not an object: /learn "
    f"inkwash style. When I have at least {MIN_PHOTOS} photos, /done starts learning. Learning "
    "takes a while; I'll keep one message updated and show you a preview when it's done.\n\n"
    "2. Edit a photo\n"
    "Send a photo with a caption, or reply to a photo with:\n"
    "  add mochi  (also: add mochi on the left)\n"
    "  replace dog with mochi  (also: replace the man on the left with anna)\n"
    "  restyle as inkwash\n"
    "  remove the man\n"
    "Say what the photo shows after a '|' to help me: "
    "replace dog with mochi | a photo of a dog on a sofa\n"
    "In groups use the commands /add, /replace, /restyle, /remove (as the photo's caption or "
    "as a reply to a photo).\n\n"
    "Under each result: Why? shows where each word looked, Sticker makes a sticker of it, "
    "Another take tries again with a new seed.\n\n"
    "3. Stickers\n"
    "Reply /sticker to any photo. Under the sticker, \"Add to my set\" puts it into your own "
    "sticker set. /pack mochi draws a word you taught me in six expressions, as a sticker set "
    "and a custom emoji set of yours.\n\n"
    "More\n"
    "/concepts - the words you can use here\n"
    "/forget mochi - delete a word and its photos\n"
    "/share mochi - in a group: let everyone here use your word\n"
    "/status - your jobs in the queue\n"
    "/cancel - stop your learning or your newest job\n\n"
    f"Names are one word: {NAME_RULE}, any case."
)

COMMANDS_PRIVATE = (
    ("learn", f"Learn a new word from {PHOTO_RANGE} photos"),
    ("done", "Start learning with the photos sent so far"),
    ("concepts", "The words you can use"),
    ("sticker", "Reply to a photo: make a sticker"),
    ("pack", "A sticker pack of a word: /pack <name>"),
    ("status", "Your jobs in the queue"),
    ("cancel", "Stop your learning or newest job"),
    ("forget", "Delete a word"),
    ("help", "How to use OneWord"),
)
COMMANDS_GROUP = (
    ("add", "Reply to a photo: add <name>"),
    ("replace", "Reply to a photo: replace <word> [on the left] with <name>"),
    ("restyle", "Reply to a photo: restyle as <name>"),
    ("remove", "Reply to a photo: remove <word>"),
    ("sticker", "Reply to a photo: make a sticker"),
    ("pack", "A sticker pack of a word: /pack <name>"),
    ("learn", "Learn a new word for this group"),
    ("done", "Start learning with the photos sent so far"),
    ("concepts", "The words you can use here"),
    ("share", "Share your private word with this group"),
    ("status", "Your jobs in the queue"),
    ("cancel", "Stop your learning or newest job"),
    ("forget", "Delete a word"),
    ("help", "How to use OneWord"),
)

DIDNT_UNDERSTAND = (
    "I didn't get that. Send a photo with a caption like \"add mochi\", or see /help."
)
UNKNOWN_COMMAND = "I don't know that command. See /help."
PHOTO_WITHOUT_COMMAND = (
    "Nice photo! What should I do with it? Reply to it with e.g. \"add mochi\", "
    "\"replace dog with mochi\", \"restyle as mochi\", \"remove the man\" or /sticker."
)
REPLY_TO_A_PHOTO = (
    "Which photo? Send the command as the caption of a photo, or as a reply to a photo."
)
STICKER_NEEDS_PHOTO = "Reply /sticker to the photo you want as a sticker."
SOMETHING_WENT_WRONG = "Sorry, something went wrong on my side. Please try again in a moment."
BUSY = "I'm a bit busy right now. Please try again in a moment."

# ------------------------------------------------------------------------------- photos

NOT_AN_IMAGE = (
    "That file isn't a picture I can read. Please send a photo (JPEG, PNG or WEBP)."
)
NO_ANIMATIONS = "Animations and GIFs don't work here, sorry. Please send a still photo."
NO_STICKERS = "Stickers don't work as input. Please send a photo."
BROKEN_IMAGE = "I couldn't open that picture: the file seems damaged or isn't an image."


def too_big(limit_mb: int) -> str:
    """A file above Telegram's download limit for bots."""
    return f"That file is too big for me (the limit is {limit_mb} MB). Please send a smaller one."


def too_many_pixels(megapixels: int) -> str:
    """A picture with too many pixels."""
    return (f"That picture is too large (more than {megapixels} megapixels). "
            f"Please send a smaller one.")


def too_small(side: int) -> str:
    """A picture too small to learn from or edit."""
    return f"That picture is too small (under {side} px on a side). Please send a bigger one."


# ------------------------------------------------------------------------------ learning

LEARN_USAGE = (
    "Tell me the new word: /learn <name> [object|person|style], e.g. /learn mochi or "
    f"/learn inkwash style. A name is {NAME_RULE}."
)
LEARN_CANCELLED = "OK, I stopped collecting photos."
DONE_WITHOUT_SESSION = "There's nothing to start: use /learn <name> first."
SESSION_NEEDS_PHOTOS = (f"I'm waiting for photos: send {PHOTO_RANGE} pictures, /done to start, "
                        "/cancel to stop.")


def bad_name(reason: str) -> str:
    """A concept name that breaks the naming rules (``reason`` comes from the storage)."""
    return f"That name won't work: {reason} Try something like mochi or my_mug."


def bad_kind(kind: str) -> str:
    """An unknown concept kind after the name."""
    return (f"\"{quoted(kind)}\" isn't a kind I know. Use object, person or style, "
            f"e.g. /learn mochi object.")


def name_taken(name: str, group: bool) -> str:
    """The name is already a concept in this scope."""
    where = "in this group" if group else "among your words"
    return (f"There's already a \"{name}\" {where}. Pick another name, or /forget {name} first.")


def already_learning(name: str) -> str:
    """A learn job with this name is already queued or running here."""
    return f"I'm already learning \"{name}\" here. /status shows how far I am."


def send_photos(name: str, kind: str, group: bool) -> str:
    """The request for photos after /learn."""
    how = (" Reply to this message with them." if group else "")
    return (
        f"Great, let's learn \"{name}\" ({kind}). Send me {MIN_PHOTOS}-{MAX_PHOTOS} photos of "
        f"it: an album is easiest, photos as files work too.{how} Different angles and "
        f"backgrounds help; a caption on a photo can say what else it shows (\"on a beach\")."
        f" /cancel to stop."
    )


def photos_so_far(count: int) -> str:
    """Progress of collecting photos."""
    if count < MIN_PHOTOS:
        missing = MIN_PHOTOS - count
        return (f"Got {count} photo{'s' if count != 1 else ''}. Send at least {missing} "
                f"more{' (up to ' + str(MAX_PHOTOS - count) + ')' if count else ''}.")
    return (f"Got {count} photos. Send up to {MAX_PHOTOS - count} more, or /done to start "
            f"learning.")


def photo_refused(reason: str, count: int) -> str:
    """A file sent for /learn that cannot be used, said as soon as it arrives."""
    return f"{reason} I didn't keep it. {photos_so_far(count)}"


def using_first(count: int) -> str:
    """More photos than needed arrived."""
    return f"You sent {count} photos; I'll learn from the first {MAX_PHOTOS}."


def learned(name: str, steps: int, warnings: Sequence[str], seen_as: str | None = None,
            kind: str = "object", check: WordCheck | None = None) -> str:
    """Caption of the preview once a concept is learned; `seen_as`, the model's own words for
    what the photos show, tells the user what the word grew from; the suggested command fits
    the `kind` (a style restyles, a thing or a person is added); `check`, the self-check of
    the word's drawings, says how reliably it comes out and what to do if it does not."""
    start = f" I started from what I saw in your photos: \"{seen_as}\"." if seen_as else ""
    command = f"restyle as {name}" if kind == "style" else f"add {name}"
    text = (f"I learned \"{name}\" ({steps} steps).{start} Here's how I picture it. Try it: "
            f"send a photo with the caption \"{command}\".")
    if check is not None and check.tries > 0:
        text += "\n" + word_check(name, check)
    if warnings:
        text += "\nNote: " + " ".join(warnings)
    return text


GOOD_WORD = 0.75  # a word drawn like the photos this often needs no advice
WEAK_WORD = 0.4  # under this share it mostly fails


def word_check(name: str, check: WordCheck) -> str:
    """The self-check in plain words, with advice fitting what went wrong when the word is
    not reliable: nothing recognisable drawn, or some of the photos' features missed."""
    share = check.alike / check.tries
    said = f"\"{name}\" comes out like your photos in {check.alike} of {check.tries} tries"
    if share >= GOOD_WORD:
        return said + "."
    if share >= WEAK_WORD:
        text = said + ": usable, but expect some misses."
    else:
        text = said + ", so it is not reliable yet."
    if 2 * check.blank >= check.tries:
        advice = ("Often nothing recognisable comes out: photos where it is big, sharp and "
                  "alone in the picture help most.")
    elif check.missing:
        shown = ", ".join(f"\"{word}\"" for word in check.missing[:4])
        advice = (f"It often misses {shown}. Photos that show "
                  f"{'that' if len(check.missing) == 1 else 'those'} clearly, up close, help.")
    else:
        advice = ("It often comes out as something else: 4-5 photos of just this thing, from "
                  "different sides and on different backgrounds, help most.")
    return (f"{text} {advice} To teach it again: /forget {name}, then /learn {name} with "
            f"new photos.")


def mixed_photos(mixed: MixedPhotos, name: str | None = None) -> str:
    """Photos of a learning job that show something else than the rest: which ones, and what
    to do (replace or drop them), since a word learned from a mix comes out as neither."""
    again = f"/learn {name}" if name else "/learn"
    if len(mixed.odd) >= mixed.count:
        return (f"🤔 Your {mixed.count} photos don't seem to show one and the same thing, so I "
                f"didn't learn from them. Please send {again} again with photos of just the "
                f"one thing.")
    numbers = ", ".join(str(n) for n in mixed.odd)
    many = len(mixed.odd) > 1
    lacks = (f" (I don't see the others' {', '.join(mixed.missing[:4])} there)"
             if mixed.missing else "")
    return (f"🤔 Photo{'s' if many else ''} {numbers} of {mixed.count} seem{'' if many else 's'} "
            f"to show something else than the others{lacks}, so I didn't learn yet: a word "
            f"learned from a mix comes out as neither. Please send {again} again and replace "
            f"{'them' if many else 'it'} with a photo of the same thing, or leave "
            f"{'them' if many else 'it'} out.")


# ------------------------------------------------------------------------------- editing


def unknown_concept(name: str, known: Sequence[str]) -> str:
    """A name the user may not use here (unknown, or somebody else's private word)."""
    if known:
        shown = ", ".join(known[:20])
        return (f"I don't know \"{name}\" here. Words you can use: {shown}. "
                f"See /concepts, or teach me with /learn {name}.")
    return f"I don't know \"{name}\" here yet. Teach me with /learn {name}, see /help."


def edit_usage(problem: str) -> str:
    """A malformed edit command."""
    return (f"{problem} Try: add mochi, replace dog with mochi, restyle as mochi or remove the "
            f"man (add \"| what the photo shows\" to help me).")


def too_many_jobs(limit: int) -> str:
    """The per-user limit of queued or running jobs."""
    return (f"You already have {limit} job{'s' if limit != 1 else ''} waiting or running. "
            f"Please wait until one finishes (see /status), or /cancel one.")


def daily_limit(limit: int) -> str:
    """The per-user daily edit limit."""
    return f"You've used all {limit} edits for today. Come back tomorrow!"


def concept_limit(limit: int) -> str:
    """The per-user limit of learned words."""
    return (f"You already have the most words I can keep for you ({limit}). /forget one to "
            f"make room.")


ANOTHER_TAKE = "Trying another take..."
DELIVERY_FAILED = "I finished, but I couldn't send you the result. Please try again."


def edit_done(command: str) -> str:
    """Caption of an edit result."""
    return f"Done: {command}" if command else "Done."



PHOTO_GONE = "I no longer have that photo. Please send it again."
MAPS_GONE = "I no longer have those attention maps, sorry."
RESULT_GONE = "I no longer have that result, sorry."
STALE_BUTTON = "This button no longer works here."


def not_allowed(user_id: int | None) -> str:
    """The answer to someone the bot's allowlist does not name."""
    who = f" (your Telegram id is {user_id})" if user_id is not None else ""
    return ("Sorry, this bot is private: it only works for the people and chats its owner "
            f"allowed. If you know the owner, ask them to add you{who}.")
CONCEPT_GONE = "One of the words in that edit is no longer available to you here."
WHY_CAPTION = ('Where each word looked in the result, one picture per word: "{target}" '
               '(the photo was read as "{source}")')

# ------------------------------------------------------------------------------ stickers

ADDING_TO_SET = "Adding it to your set..."


def sticker_added(link: str, created: bool) -> str:
    """The sticker went into the user's own set."""
    what = "I made you a sticker set and added it" if created else "Added to your sticker set"
    return f"{what}: {link}"


STICKER_SET_FAILED = "I couldn't add it to your sticker set: {reason}"
STICKER_SET_TITLE = "{name}'s OneWord stickers"

PACK_USAGE = ("Which word? /pack <name> makes a sticker pack of a word you taught me (or reply "
              "/pack to a message that names the word).")
PACK_NOT_YOURS = "Only the person who asked for this pack can redo its stickers."
PACK_REDOING = "Drawing that one again..."


def pack_unknown_word(name: str) -> str:
    """/pack of a word this chat doesn't know."""
    return (f"I don't know the word \"{name[:40]}\" here. Teach it to me with /learn, or see "
            "/concepts for the words you can use.")


def pack_no_word_in_reply(words: Sequence[str]) -> str:
    """A bare /pack replying to a message that names no word the user may use here."""
    known = (f" Your words here: {', '.join(words[:10])}{', ...' if len(words) > 10 else ''}."
             if words else " Teach me one first with /learn.")
    return ("I don't see a word you taught me in that message. Which word? Send /pack <name>."
            + known)


def pack_which_word(words: Sequence[str]) -> str:
    """A bare /pack replying to a message that names several of the user's words."""
    shown = words[:5]
    return (f"That message names {len(words)} of your words ({', '.join(shown)}"
            f"{', ...' if len(words) > len(shown) else ''}). Which one? Send /pack {shown[0]}, "
            "say, for a pack of that one.")


def pack_style(name: str) -> str:
    """/pack of a style: a pack draws a thing or a person."""
    return (f"\"{name}\" is a style, and a sticker pack needs a thing or a person. Try a "
            "restyle instead, e.g. reply \"restyle as " + name + "\" to a photo.")


def pack_title(word: str) -> str:
    """The title of a pack's sticker set and emoji set."""
    return f"{word} by OneWord"


def pack_ready(word: str, count: int, stickers_link: str, emoji_link: str) -> str:
    """The pack went into a new sticker set and emoji set."""
    return (f"Your {word} pack is ready: {count} stickers {stickers_link}\n"
            f"and the same as custom emoji: {emoji_link}\n"
            "Don't like one? Tap its button to draw it again.")

# -------------------------------------------------------------------------------- concepts

SHARE_USAGE = "Use /share <name> in the group where everyone should be able to use your word."
SHARE_IN_GROUP = "Sharing works in groups: send /share <name> in the group you want to share with."
FORGET_USAGE = "Which word? /forget <name>"


def concept_list(concepts: Sequence[tuple[StoredConcept, str]], group: bool) -> str:
    """The words usable here, with whose they are."""
    if not concepts:
        here = "in this group" if group else "yet"
        return f"There are no words you can use {here}. Teach me one with /learn <name>."
    lines = [f"- {c.name} ({c.kind.value}, {whose})" for c, whose in concepts]
    return "Words you can use here:\n" + "\n".join(lines)


WHOSE_MINE = "yours"
WHOSE_MINE_SHARED = "yours, shared here"
WHOSE_GROUP = "this group's"


def whose_shared(owner: str) -> str:
    """A word someone else shared into this group."""
    return f"shared by {owner}"


def forgotten(name: str) -> str:
    """A concept was deleted."""
    return f"Done: I forgot \"{name}\" and deleted its files."


def not_yours_to_forget(name: str) -> str:
    """Only the owner (or a group admin, for group words) may delete."""
    return f"Only the person who taught \"{name}\" (or a group admin) can make me forget it."


def shared(name: str) -> str:
    """A personal concept now shared into the group."""
    return f"Everyone here can now use \"{name}\"."


def no_own_concept(name: str) -> str:
    """/share of a name the user has no private word for."""
    return (f"You have no private word \"{name}\" to share. Teach it to me in our private "
            f"chat first (/learn {name}), then /share {name} here.")


def share_refused(reason: str) -> str:
    """Sharing refused by the storage rules."""
    return f"I can't share that: {reason}"


# ------------------------------------------------------------------------- jobs and status

NOTHING_TO_CANCEL = "You have nothing running here to cancel."
NO_JOBS = "You have no jobs waiting or running."
CANCELLED_STATUS = "Cancelled."


def cancelled(what: str) -> str:
    """A job was cancelled by its user."""
    return f"OK, cancelled: {what}."


def already_finished(what: str) -> str:
    """/cancel raced with the job finishing."""
    return f"Too late to cancel, it just finished: {what}."


def job_title(job: Job) -> str:
    """A short description of a job, for status lines."""
    try:
        if job.kind == JobKind.LEARN:
            return f"learning \"{from_json(LearnPayload, job.payload).name}\""
        if job.kind == JobKind.EDIT:
            return f"edit \"{from_json(EditPayload, job.payload).command.text}\""
    except (TypeError, ValueError):  # a payload this version cannot read
        return str(job.kind)
    if job.kind == JobKind.STICKER:
        return "sticker"
    if job.kind == JobKind.PACK:
        return "sticker pack"
    return job.kind


def progress_bar(fraction: float, width: int = 10) -> str:
    """A text progress bar like ``▓▓▓░░░░░░░``."""
    filled = max(0, min(width, round(fraction * width)))
    return "▓" * filled + "░" * (width - filled)


WORKER_RESTARTED = "the worker restarted, your job continues"
WORKER_SILENT = "the worker stopped answering; your job will continue when it is back"


def job_status(job: Job, position: int | None, *, stalled: bool = False) -> str:
    """The one status line kept up to date while a job waits or runs. ``stalled``: the
    worker running it has missed its heartbeats (it may have crashed)."""
    title = job_title(job)
    title = title[0].upper() + title[1:]
    restarted = job.attempts > 0 and job.error == LEASE_EXPIRED_ERROR
    if job.state is JobState.QUEUED:
        attempt = f"(attempt {job.attempts + 1} of {job.max_attempts})"
        if restarted:
            return f"⏳ {title}: {WORKER_RESTARTED} {attempt}."
        if job.attempts and job.error:
            return f"⏳ {title}: trying again {attempt}."
        if position is None:
            return f"⏳ {title}: waiting in the queue."
        ahead = "you're next in the queue" if position == 1 else f"#{position} in the queue"
        return f"⏳ {title}: {ahead}."
    if job.state is JobState.RUNNING:
        percent = round(100 * job.progress)
        detail = f" - {job.progress_text}" if job.progress_text else ""
        if stalled:
            detail = f" - {WORKER_SILENT}"
        elif restarted:
            detail += f" ({WORKER_RESTARTED})"
        return f"⚙️ {title}: {progress_bar(job.progress)} {percent}%{detail}"
    if job.state is JobState.CANCELLED:
        return f"🚫 {title}: {CANCELLED_STATUS.lower()}"
    return f"✅ {title}: finished."


def status_list(lines: Sequence[str]) -> str:
    """/status with several jobs."""
    return "Your jobs:\n" + "\n".join(f"- {line}" for line in lines)


def job_failed(job: Job) -> str:
    """A job that ended in state failed: tell the user why, or what to ask instead."""
    advice = advice_in(job.error)
    if advice is not None:
        return f"🤔 {advice}"
    mixed = MixedPhotos.in_error(job.error)
    if mixed is not None:
        payload = job.payload if isinstance(job.payload, dict) else {}
        return mixed_photos(mixed, str(payload.get("name") or "") or None)
    title = job_title(job)
    error = (job.error or "unknown error").strip()
    tries = f" (tried {job.attempts} times)" if job.attempts > 1 else ""
    return f"Sorry, {title} failed{tries}: {error}"
