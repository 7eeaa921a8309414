"""Keyword tables for ``router_service.heuristic`` (data only): channel -> weight -> terms.

Terms are ``|``-separated and lowercase: ``word``, ``stem*`` (any word starting with the
stem), ``multi word phrase`` (whole words, punctuation ignored) or ``~substring`` (raw
substring of the lowercased text: scripts without spaces, and tokens like ``c++``).
A few common non-English forms are included for the cheap, high-value cases (greetings,
translate, summarize, explain)."""

from __future__ import annotations

_LANGS = (  # noqa: SIM905 - one string reads better than 32 quoted words
    "english spanish french german italian portuguese chinese mandarin cantonese japanese korean "
    "russian arabic hindi dutch swedish norwegian danish finnish polish turkish vietnamese thai "
    "indonesian greek hebrew latin ukrainian czech romanian persian urdu"
).split()
_LANG_PHRASES = "|".join(f"{p} {lang}" for lang in _LANGS for p in ("in", "into", "to"))

INTENT_TERMS: dict[str, dict[float, str]] = {
    "chitchat": {
        3.0: "hi|hii|hiii|hello|hey|heyy|hiya|howdy|yo|sup|greetings|thanks|thank|thx|ty|tysm"
        "|cheers|bye|goodbye|goodnight|cya|lol|lmao|haha|hahaha|hehe|good morning|good night"
        "|good evening|good afternoon|how are you|how are u|how r u|how's it going|what's up"
        "|whats up|who are you|who are u|who made you|who created you|who built you|your name"
        "|are you a bot|are you human|are you an ai|are you real|are you chatgpt|are you gpt"
        "|what can you do|nice to meet you|talk tomorrow|see you|see ya|appreciate it"
        "|have a good one|just wanted to|wanted to tell|just chat|chat for a bit|about yourself"
        "|your favorite|your favourite|hola|gracias|bonjour|bonsoir|merci|salut|ça va|hallo"
        "|danke|wie geht's|ciao|grazie|obrigado|obrigada|tudo bem|cómo estás|привет|спасибо"
        "|~你好|~谢谢|~こんにちは|~ありがとう|~안녕|~नमस्ते",
        1.5: "feelings|bored|tired|lonely|ok|okay|cool|nice|awesome|great|sure|yep|nope|bot"
        "|chatgpt|siri|alexa|robot|sleep|old are you|are you|do you|have you|about you"
        "|you and|yourself|morning|birthday|vent|sorry|stressed|excited|lifesaver|ngl"
        "|real talk|chat|chats|talk|talking|weird|funny|friend|friends",
        1.0: "you|your|u|remember|can you see|can you hear",
    },
    "knowledge_qa": {
        2.0: "what is|what are|what's|whats|what was|what were|what does|who is|who was|who were"
        "|who invented|when did|when was|when is|where is|where are|where was|how does|how do"
        "|how did|how is|how are|why is|why are|why do|why does|why did|explain|explanation"
        "|define|definition|meaning of|difference between|tell me about|history of|describe"
        "|qué es|que es|qu'est-ce|c'est quoi|was ist|was sind|wie funktioniert|cos'è"
        "|o que é|что такое|~什么是|~是什么|~とは|~为什么|~なぜ",
        1.0: "how|why|what|who|when|where|which|fact|facts|concept|theory|overview|mean|means"
        "|difference|history|origin|cause|causes|work|works|science|scientific|wikipedia",
    },
    "summarization": {
        3.0: "summar*|tldr|recap*|condense*|synopsis|gist|sum up|sum it up|key points|main points"
        "|key takeaways|main takeaways|main ideas|in a nutshell|brief overview|short version"
        "|zusammenfass*|fasse zusammen|fass zusammen|resumir|resumen|resume el|résum*|riassum*"
        "|кратко|~tl;dr|~总结|~概括|~摘要|~要約|~まとめ|~요약",
        1.0: "zusammen|fasse|kurz|shorten|brief|briefly|outline|highlights|digest|abstract"
        "|bullet points|few sentences|following text|this article|this text|the article"
        "|transcript|meeting notes",
    },
    "translation": {
        3.0: "translat*|tradu*|übersetz*|uebersetz*|vertaal*|przetłumacz*|tłumacz*|översätt*"
        "|oversett*|çevir*|перевед*|перевод*|how do you say|how do i say|how to say|se dice"
        "|comment dit-on|comment on dit|word for|mean in|~翻译|~翻訳|~번역|~अनुवाद|" + _LANG_PHRASES,
        1.0: "|".join(_LANGS) + "|español|français|deutsch|italiano|português|language",
    },
    "rewriting": {
        3.0: "rewrit*|rephras*|paraphras*|reword*|proofread*|umformulier*|reformul*|parafrase*"
        "|fix grammar|fix the grammar|fix my grammar|correct the grammar|grammar check"
        "|check grammar|check the grammar|check my grammar|fix typos|fix the typos|fix spelling"
        "|fix the spelling|more formal|more professional|more polite|more casual|less formal"
        "|more concise|sound better|sound more|make it sound|make this sound|improve this text"
        "|improve the wording|improve my writing|polish this|edit this|grammatically correct"
        "|simplify this|plain english|~改写|~润色",
        1.0: "grammar|spelling|typos|tone|formal|informal|polite|concise|edit|wording|simplify"
        "|clearer|professional|improve|fluent|polish|revis*|correct|sentence|paragraph"
        "|corrige|corregir|korrigier*",
    },
    "extraction": {
        3.0: "extract*|extrah*|extraer|extraire|pull out|named entities|named entity|entities"
        "|key-value|find all|identify all|list all the|list every|get all the|~提取|~抽出",
        1.0: "from the following|from this text|from the text|from the passage|from this email"
        "|parse|fields|mentioned|phone numbers|email addresses|names|dates|addresses|amounts"
        "|as json|in json|json format|structured|table|keywords|entity",
    },
    "classification": {
        3.0: "classif*|categoriz*|categoris*|klassifizier*|clasific*|sentiment|positive or negative"
        "|positive negative|positive neutral|negative neutral|is this spam|spam or not"
        "|label the|label each|label this|tag each|tag this|which category|what category"
        "|which of the following categories|assign a label|assign a category|toxic|toxicity"
        "|intent of|~分类",
        1.0: "label|labels|tag|tags|category|categories|positive|negative|neutral"
        "|spam|topic|genre|rate|rating|review|sort",
    },
    "creative_writing": {
        3.0: "poem*|poetry|haiku*|limerick*|sonnet*|lyrics|song|story|stories|essay*|screenplay"
        "|cover letter|blog post|slogan*|tagline*|marketing copy|ad copy|product description"
        "|eulogy|rhyme*|rap|ballad|fairy tale|fable|novel|chapter|fiction|narrative|write a letter"
        "|write an email|write a speech|write an article|write a tweet|write a post|linkedin post"
        "|instagram caption|caption|gedicht|poema|poème|cuento|histoire|geschichte|~诗|~故事",
        1.0: "write|writing|compose|draft|email|letter|article|speech|tweet|post|blog|character"
        "|plot|verse|creative|headline|copy|announcement|invitation|bio|toast|in the style of",
    },
    "brainstorming": {
        3.0: "brainstorm*|ideas|come up with|give me some|suggest some|suggestions for|ways to"
        "|tips for|tips on|names for|name ideas|what are some|think of|ideas for|itinerary"
        "|plan a|plan for|plan my|gift ideas|ideen|idées",
        1.0: "suggest*|recommend*|tips|options|alternatives|list|plan|planning|possible|names"
        "|ways|things|activities|topics|themes|strategies|trip|party|menu",
    },
    "roleplay": {
        3.0: "act as|act like|pretend*|roleplay*|role-play|role play|play the role|in character"
        "|stay in character|imagine you are|imagine you're|you are now|from now on you"
        "|respond as|reply as|behave as|behave like|as if you were|let's play|lets play"
        "|game master|dungeon master|persona|you will be|you are a|you're a|your role is"
        "|you will act|you are my",
        1.0: "character|role|play|game|scene|interview|interviewer|npc|simulat*|adventure|dnd"
        "|rpg|pirate|wizard|detective",
    },
    "coding": {
        3.0: "code|coding|function|python|javascript|typescript|java|golang|rust|kotlin|swift"
        "|ruby|php|perl|scala|haskell|sql|mysql|postgres|postgresql|sqlite|regex|regexp"
        "|regular expression|bash|shell|powershell|html|css|react|vue|angular|django|flask"
        "|fastapi|nodejs|npm|dockerfile|docker|kubernetes|terraform|yaml|api|endpoint"
        "|implement*|programming|write a function|write a program|write a script|write code"
        "|unit test|unit tests|snippet|pandas|numpy|class|method|~c++|~c#|~.py|~.js",
        1.5: "script|algorithm|program|query|database|schema|compile*|library|framework|git|cli"
        "|command line|array|recursion|variable|variables|loop|data structure|backend|frontend"
        "|json|csv|excel formula|macro|automate|server|linux|terminal|config|deploy|app"
        "|website|webpage|integer|string|boolean",
    },
    "debugging": {
        3.0: "debug*|bug|bugs|buggy|error|errors|exception|traceback|stack trace|stacktrace"
        "|segfault|segmentation fault|doesn't work|does not work|not working|isn't working"
        "|won't compile|fails|failing|crash*|fix this code|fix my code|fix the code|fix this bug"
        "|fix the bug|what's wrong|what is wrong|why does this|why doesn't|why is my|code review"
        "|review this code|review my code|explain this code|what does this code|this code"
        "|my code|typeerror|valueerror|keyerror|nullpointerexception|null pointer|syntax error"
        "|compile error|unexpected output|expected output|infinite loop|memory leak|fehler",
        1.0: "fix|issue|problem|wrong|broken|warning|review|unexpected|expected|instead|trace"
        "|logs|undefined|returns|throws|works",
    },
    "math": {
        3.0: "solve for|solve the equation|equation*|integral*|derivative*|differentiat*|calculus"
        "|algebra*|geometry|trigonometr*|probabilit*|theorem|factorial|matri*|eigen*|polynomial*|quadratic"
        "|logarithm*|sqrt|square root|fraction*|percent*|word problem|arithmetic|multiply"
        "|divided by|standard deviation|expected value|find x|solve for|value of x|inequalit*"
        "|modulo|gcd|lcm|ecuación|gleichung|équation|berechne|calcula|calculer|~方程|~计算",
        1.5: "solve|prove|proof|calculate|compute|how many|how much|statistic*|prime|primes|factor"
        "|integrate|sum|plus|minus|times|average|mean|median|variance|triangle|circle|radius"
        "|area|perimeter|volume|angle|slope|graph|limit|series|sequence|digits|number|numbers"
        "|math|maths|mathematics|odds|ratio",
    },
    "reasoning": {
        3.0: "puzzle*|riddle*|logic|logical*|step by step|pros and cons|trade-off*|tradeoff*"
        "|should i|which is better|which one is better|which would you choose|what would happen"
        "|hypothetical*|decide between|help me decide|deduce|deduction|infer|paradox|dilemma"
        "|syllogism|knights and knaves|compare and contrast|brain teaser|lateral thinking"
        "|trick question|reason about|think through|weigh the",
        1.5: "analy*|evaluat*|compar*|decision|decide|strategy|implications|versus|vs|argue"
        "|argument|true or false|is it possible|because|therefore|assume|suppose|consider"
        "|better|worse|choose|risks|if",
    },
}

# Complexity: the request asks for deep, multi-step or expert work (0..50 in total).
COMPLEX_TERMS: dict[float, str] = {
    30.0: "implement*|implément*|architect*|design|designing|prove|proving|proof|derive"
    "|derivation|refactor*|optimi*|debug*|from scratch|system design|formal proof",
    15.0: "analy*|analiz*|compar*|evaluat*|algorithm*|concurren*|distributed|scalab*"
    "|thread-safe|race condition|deadlock|asynchronous|edge cases|theorem|rigorous*"
    "|time complexity|big-o|benchmark*|migrat*|end-to-end|architecture|vulnerabilit*|security"
    "|performance|integral|differential|machine learning|neural network|database schema"
    "|critique|synthesi*|research|strategy|comprehensive|in detail|in depth|in-depth"
    "|production|microservice*|kubernetes|cryptograph*|compiler|interpreter|formaliz*"
    "|infinitely|irrational|converge*|induction|typeerror|valueerror|nullpointerexception"
    "|stack trace|memory leak|segfault|multi-step|step-by-step",
    6.0: "explain|code|function|script|program|calculate|solve|plan|detailed|multiple|unit tests"
    "|tests|api|query|sql|regex|class|error|exception|traceback|equation|probability|essay"
    "|story|report|evaluate|requirements|constraints",
}

# Simple requests a small local model handles well (-15..0 in total).
SIMPLE_TERMS: dict[float, str] = {
    8.0: "summar*|translat*|tradu*|übersetz*|zusammenfass*|résum*|resumir|fix grammar"
    "|fix the grammar|fix typos|grammar|what is|what's|whats|what are|define|definition|hi"
    "|hello|hey|thanks|thank|thx|bye|joke|synonym*|antonym*|spell|spelling|how do you say"
    "|capital of|who is|who was|rephras*|paraphras*|one word|one sentence|yes or no|hola"
    "|gracias|bonjour|merci|hallo|danke|~你好|~谢谢|~翻译|~总结",
    4.0: "briefly|short|simple|quick|quickly|list|name|example",
}

# Reasoning cues: the answer needs several connected steps (0..20 in total).
REASON_TERMS: dict[float, str] = {
    8.0: "step by step|step-by-step|trade-off*|tradeoff*|pros and cons|explain your reasoning"
    "|show your work|think carefully|think through|if and only if|prove that",
    5.0: "however|why|therefore|thus|hence|on the other hand|assume|assuming|suppose|given that"
    "|what if|justify|implications|consequence*|versus|vs|whereas|although|warum|pourquoi"
    "|por qué|porque|constraints|edge case|reason|reasoning",
}
