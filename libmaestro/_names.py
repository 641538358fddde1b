"""Readable, unique names for sessions (`cheery_panther`) and processes without a name.

Two words are easy to say and type but give only ~60,000 combinations, so uniqueness is not left
to chance: the caller passes `is_taken` (a session directory exists, a name is in the store) and
the generator draws again, adding a number once the two-word space around it is crowded.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable

ADJECTIVES = sorted(set("""
able agile airy amber ample apt arctic ardent artful astute auburn avid azure balmy bold brave
breezy bright brisk bubbly buoyant calm candid capable careful caring casual cheery chipper civic
clever cosmic cozy crafty crisp curious daring dapper dazzling deft devoted dreamy dynamic eager
earnest easy elated elegant epic exact fabled fair faithful fancy fearless festive fiery fine
fleet fluent fond frank free fresh friendly frosty frugal funny gallant gentle giddy gifted glad
gleaming glowing golden graceful grand grateful groovy happy hardy hearty helpful heroic honest
hopeful humble icy ideal idle jazzy jolly jovial joyful jubilant keen kind kindly laughing lavish
leafy lively loyal lucid lucky lunar lush magic majestic mellow merry mighty mild misty modest
mossy nimble noble nifty nocturnal novel oaken opal optimal orderly patient peaceful peppy perky
placid playful plucky polite polished poised precise proud prudent quick quiet quirky radiant
rapid rare ready regal relaxed resolute rosy royal rugged rustic sandy savvy scenic serene sharp
shiny silent silky silver simple sincere sleek smart smooth snappy snowy snug solar solid sonic
sparkling speedy spirited splendid spry stable starry steady stellar stoic stormy sturdy sublime
sunny super swift tactful tender thrifty tidy timely tireless tranquil trusty tidal unique upbeat
urban valiant velvet vibrant vigilant vivid warm wavy whimsical wild wise witty wooden zany zealous
zesty amiable bouncy breezy cobalt coral crimson dusky emerald fuzzy glossy hazel indigo ivory
jade lilac maroon minty navy ochre olive pearly plum ruby russet saffron scarlet teal topaz umber
""".split()))

ANIMALS = sorted(set("""
aardvark albatross alpaca anchovy anteater antelope armadillo avocet axolotl baboon badger barracuda
basilisk bat beagle bear beaver beetle bison blackbird bluejay boar bobcat bonobo buffalo bumblebee
bunting butterfly buzzard camel canary capybara caracal cardinal caribou cassowary catfish cheetah
chameleon chamois chickadee chinchilla chipmunk cicada civet clam cobra cockatoo condor coral
cormorant cougar coyote crab crane crayfish cricket crocodile crow cuckoo curlew dingo dolphin
donkey dormouse dove dragonfly duck dugong eagle echidna eel egret eland elephant elk emu ermine
falcon ferret finch firefly flamingo flounder fox frog gazelle gecko gerbil gibbon giraffe gnu
goat goldfinch goose gopher gorilla grasshopper grouse gull hamster hare harrier hawk hedgehog
heron herring hippo hornet horse hummingbird hyena ibex ibis iguana impala jackal jaguar jay
jellyfish kangaroo kestrel kingfisher kinkajou kite kiwi koala kookaburra krill ladybug lemming
lemur leopard limpet lion lizard llama lobster locust loon lynx macaw magpie mallard manatee
mandrill mantis marmot marten meerkat mink mole mongoose moose moth mouse mule muskrat narwhal
newt nightingale ocelot octopus okapi opossum orca oriole osprey ostrich otter owl ox oyster
panda pangolin panther parrot partridge peacock pelican penguin petrel pheasant pigeon pika
piranha platypus plover pony porcupine porpoise possum prawn puffin puma python quail quokka
rabbit raccoon raven reindeer rhino robin salamander salmon sandpiper sardine scorpion seahorse
seal shark sheep shrew shrimp skunk sloth snail sparrow spider squid squirrel starfish stingray
stork swallow swan swift tapir tarsier termite tern tiger toad tortoise toucan trout tuna turkey
turtle urchin vicuna viper vole vulture wallaby walrus warbler wasp weasel whale wildcat wolf
wolverine wombat woodpecker wren yak zebra
""".split()))

# After this many taken two-word draws in a row, the space is crowded: add a number.
_TWO_WORD_ATTEMPTS = 20


def readable_name(is_taken: Callable[[str], bool], *, rng: random.Random | None = None) -> str:
    """A two-word name such as `cheery_panther` for which `is_taken` is false.

    Args:
        is_taken: tells whether a candidate is already in use.
        rng: a seeded generator for tests; by default names come from the OS's randomness.
    """
    choose = rng.choice if rng is not None else secrets.choice
    for _ in range(_TWO_WORD_ATTEMPTS):
        candidate = f"{choose(ADJECTIVES)}_{choose(ANIMALS)}"
        if not is_taken(candidate):
            return candidate
    # Crowded: widen with a number. Each round multiplies the space, so this ends quickly.
    width = 2
    while True:
        for _ in range(_TWO_WORD_ATTEMPTS):
            number = (rng.randrange if rng is not None else secrets.randbelow)(10**width)
            candidate = f"{choose(ADJECTIVES)}_{choose(ANIMALS)}_{number}"
            if not is_taken(candidate):
                return candidate
        width += 1


def random_process_id() -> str:
    """An id for a process declared without a name: short, unique, safe as a directory name."""
    return f"process_{secrets.token_hex(4)}"
