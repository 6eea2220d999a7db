"""Word lists of the synthetic posts: common English words and one vocabulary per topic.

Data only, as whitespace-separated words. Each topic's words are the signal a text model
learns the topic from; common words are the noise around them. Earlier words of a list
are drawn more often (Zipf).
"""

COMMON = """
the of and to a in is that it for was on are as with be at this have from or by one had
not but what all were when we there can an your which their said if do will each about how
up out them then she many some so these would other into has more her two like him see
time could no make than first been its who now people my made over did down only way find
use may water long little very after words called just where most know get through back
much go good new write our me man too any day same right look think also around another came
come work three word must because does part even place well such here take why things help
put years different away again off went old number great tell men say small every found
still between name should home big give air line set own under read last never us left end
along while might next sound below saw something thought both few those always looks show
large often together asked house world going want school important until form food keep
children feet land side without boy once animals life enough took sometimes four head above
kind began almost live page got earth need far hand high year mother light parts country
father let night following picture being study second eyes soon times story boys since white
days ever paper hard near sentence better best across during today others however sure means
knew its try told young miles sun ways thing whole hear example heard several change answer
room sea against top turned learn point city play toward five using himself usually money
seen car morning given far stay really week already actually maybe perhaps almost quite
"""

TOPIC_WORDS: dict[str, str] = {
    "movie": """
film movie director actor actress scene scenes plot character characters performance cast
screenplay cinematography soundtrack script sequel trilogy villain hero heroine drama comedy
thriller horror romance acting dialogue ending twist storyline cinema screen hollywood studio
oscar award nominated premiere audience viewers watched rewatch boring masterpiece classic
cult remake adaptation novel budget blockbuster indie documentary animated animation cartoon
westerns western noir suspense gore zombie vampire monster alien spaceship sci fiction fantasy
wizard kung martial karate gangster mafia detective murder mystery killer ghost haunted
camera shot shots editing lighting score composer costume makeup effects cgi stunt stunts
role roles starring lead supporting cameo extras producer producers filmmaker filmmaking
directing directed acted overacting wooden cheesy cliche cliches predictable unpredictable
hilarious funny laughable awful terrible brilliant superb mediocre dull gripping moving
touching heartwarming emotional tearjerker disappointing overrated underrated flick flicks
episode episodes series sitcom pilot season dvd vhs video rental theater theatre cinemas
ticket popcorn credits opening climax finale subplot backstory flashback narrator narration
voiceover dubbing subtitles subtitled foreign french italian japanese anime kurosawa hitchcock
spielberg kubrick scorsese tarantino bergman fellini chaplin keaton brando deniro pacino
streep hepburn bogart wayne eastwood stallone schwarzenegger bond batman superman spiderman
disney pixar musical musicals songs dance dancing choreography romantic lovers love affair
wedding girlfriend boyfriend teenage teen teens slasher campy satire parody spoof rated
review reviewer critics critic imdb stars rating recommend recommended worst best seen
watching watch plotline pacing tension atmosphere atmospheric visuals visually stunning
gorgeous beautifully portrayal portrays portrayed depicts depiction protagonist antagonist
sidekick ensemble chemistry charisma charismatic likable unlikable believable unbelievable
""",
    "covid": """
covid coronavirus pandemic virus vaccine vaccines vaccinated vaccination vaccinations
unvaccinated booster boosters dose doses jab jabs pfizer moderna astrazeneca sputnik johnson
mrna lockdown lockdowns quarantine isolation isolate isolating selfisolation mask masks masked
facemask distancing outbreak outbreaks cases infections infected infection positive negative
test tests testing pcr antigen rapid swab symptoms symptom fever cough breath breathing
smell taste fatigue hospital hospitals hospitalised hospitalized icu ventilator ventilators
nurses doctors healthcare frontline nhs cdc who fauci epidemic epidemiologist epidemiology
variant variants delta omicron alpha mutation mutations strain spread spreading transmission
contagious airborne droplets sanitizer sanitiser handwashing hygiene immunity immune antibodies
herd deaths death toll mortality fatality curve flatten wave surge spike peak reopening
reopen restrictions curfew mandate mandates passport passports certificate qr stayhome
stayathome staysafe wearamask covid19 sarscov2 ncov wuhan china quarantined workfromhome
remote zoom homeschooling furlough unemployment stimulus relief frontliners essential
workers shortage ppe gloves gowns supplies lab labs trial trials efficacy effective
side effects myocarditis clot clots approval approved fda ema emergency authorization rollout
appointment clinic clinics pharmacy pharmacies jabbed fully partially shot shots arm sore
elderly vulnerable comorbidities immunocompromised longcovid recovered recovery recoveries
contact tracing app tracer incubation asymptomatic presymptomatic superspreader cluster
clusters hotspot hotspots community spread travel ban border borders flights quarantine
hotel isolation negative result results update updates daily briefing governor minister
health officials scientists experts modelling data dashboard rate rates positivity r number
""",
    "business": """
business company companies firm firms market markets shares share stock stocks investor
investors investment investments profit profits loss losses revenue revenues sales earnings
quarter quarterly annual results growth economy economic economist economists inflation
interest rates bank banks banking central lending loan loans debt deficit budget fiscal
monetary currency dollar euro pound yen exchange trade trading deal deals merger mergers
acquisition acquisitions takeover bid bids offer chief executive ceo chairman board
shareholders shareholder dividend dividends bonus bonuses pension pensions fund funds hedge
equity private capital venture startup startups ipo listing listed ftse dow nasdaq index
indices bond bonds yields treasury oil gas crude opec energy prices price pricing consumer
consumers retail retailer retailers spending demand supply chain manufacturing factory
factories output exports imports tariff tariffs jobs employment unemployment workforce
layoffs redundancies wages salary salaries union unions strike regulator regulators
regulation competition antitrust watchdog fine fined lawsuit court settlement bankruptcy
insolvency administration creditors restructuring cuts costs cost savings forecast forecasts
outlook analyst analysts estimate estimates expectations guidance margins margin turnover
billion million firm's airline airlines carrier car carmaker carmakers steel mining insurer
insurance property housing mortgage mortgages landlord rent rents brand brands advertising
marketing customers customer telecoms pharmaceutical supermarket supermarkets chain stores
online ecommerce boardroom executive executives shareholders' stake stakes sell selling
bought buy buying sold sector sectors industry industries gdp recession slowdown recovery
boom crisis downturn rebound rally slump plunge soared fell rose gained lost percent
""",
    "sport": """
sport sports football soccer match matches game games team teams player players coach
manager squad league premiership premier championship champions cup final finals semi
quarterfinal tournament season fixture fixtures goal goals scored scorer striker midfielder
defender goalkeeper keeper penalty penalties free kick corner header tackle foul red yellow
card referee var offside win wins won victory defeat lose lost draw drew points table
relegation promotion transfer transfers signing signed contract loan injury injured
hamstring knee ankle fitness training pitch stadium crowd fans supporters home away rugby
tennis wimbledon grand slam serve set sets tiebreak cricket wicket wickets innings batsman
bowler test ashes athletics olympic olympics olympian medal medals gold silver bronze sprint
marathon race races racing relay hurdles record records world champion title titles
boxing fight bout knockout heavyweight formula grand prix driver drivers lap laps pole
podium golf golfer open birdie par putt hole ryder basketball nba baseball hockey
cycling tour stage swimmer swimming gymnastics skiing ski skating rowing sailing
captain debut caps international internationals england scotland wales ireland france
arsenal chelsea liverpool manchester united city tottenham everton newcastle celtic rangers
barcelona madrid juventus bayern milan inter psg ajax coaches coaching tactics formation
substitute substitutes bench kickoff halftime fulltime extra time shootout replay leg
aggregate qualifier qualifiers qualification seeded seed upset comeback winner winners
runner unbeaten streak form clean sheet hattrick assist assists dribble cross volley
""",
    "politics": """
government minister ministers prime president parliament parliamentary mp mps election
elections vote votes voters voting ballot poll polls campaign campaigning candidate
candidates party parties labour conservative tory tories liberal democrat democrats
republican republicans opposition leader leadership cabinet secretary chancellor
spokesman spokeswoman policy policies bill bills law laws legislation act reform reforms
commons lords senate congress house committee inquiry report debate debates motion
amendment constitution constitutional referendum manifesto pledge pledges promise promises
tax taxes taxation spending cuts budget welfare benefits immigration asylum border
security defence defense military troops war iraq afghanistan foreign affairs diplomat
diplomats diplomatic embassy ambassador sanctions treaty summit talks negotiations
agreement deal eu european union brussels nato un united nations council mayor
councillor councillors local regional devolution scotland independence whitehall
downing westminster number ten blair brown howard kennedy straw blunkett prescott
speech speeches statement statements announced announcement critics criticism
criticised scandal resign resigned resignation sacked reshuffle backbench backbenchers
rebels rebellion whip whips majority minority coalition seat seats constituency
constituencies marginal swing turnout electoral commission reformers civil liberties
rights human court courts judge judges judicial ruling ruled supreme justice home office
police crime prison prisons terror terrorism terrorist terrorists anti legislation powers
id cards identity civil servants public services nhs schools education tuition fees
pensions council tax chancellor's spending review lobby lobbying donation donations
""",
    "tech": """
technology tech computer computers software hardware internet online web website websites
digital mobile phone phones smartphone handset handsets broadband network networks
wireless wifi bluetooth chip chips processor processors microsoft apple google yahoo
ibm intel sony nokia samsung amazon ebay facebook microsoft's windows linux mac ipod
itunes music download downloads downloading file files sharing peer p2p piracy pirated
copyright users user search engine engines browser browsers email emails spam virus
viruses worm hacker hackers hacking security firewall password passwords privacy data
database server servers cloud storage memory gigabyte megabyte bandwidth speed speeds
gadget gadgets device devices console consoles playstation xbox nintendo games gaming
gamer gamers video camera cameras digital photos tv television hdtv screen screens
display displays laptop laptops pc pcs desktop tablet keyboard mouse battery batteries
robot robots robotics artificial intelligence ai algorithm algorithms machine learning
code coding programmer programmers developer developers app apps application
applications open source blog blogs blogger bloggers podcast podcasts rss feed feeds
telecom telecoms operator operators 3g 4g satellite gps navigation sensor sensors
innovation innovative gizmo upgrade upgrades launch launched release version beta patch
bug bugs glitch crash crashes install installed subscription subscribers service
services online shopping ecommerce e-commerce startup silicon valley engineers
engineering research lab labs prototype consumer electronics cable fibre fiber
""",
    "entertainment": """
music singer singers band bands album albums single singles song songs chart charts
number hit hits pop rock rap hip hop star stars celebrity celebrities concert concerts
tour festival festivals gig gigs stage awards award grammy brit brits mtv oscar oscars
bafta baftas nomination nominations nominated ceremony red carpet host hosted presenter
presenters show shows tv television bbc itv channel series soap soaps reality contestant
contestants talent judge judges x factor idol viewers ratings audience audiences
broadcaster broadcast documentary comedian comedians comedy sketch actor actress
theatre theater west end broadway musical musicals play playwright novel novelist
author authors book books bestseller publisher publishing poet poetry literary prize
booker artist artists art gallery exhibition painting museum fashion designer designers
model models catwalk style magazine tabloid gossip paparazzi fame famous fans fan
record label deal contract producer producers manager release released releases
debut comeback reunion split frontman guitarist drummer rapper duo trio group lyrics
vocals video videos premiere screening cinema box office takings studio hollywood
blockbuster sequel franchise starring celebrity's wedding divorce engaged romance
couple baby birthday party interview interviews memoir autobiography biography
radio dj station listeners playlist download downloads sales sold platinum gold
royalties copyright legend legendary veteran icon iconic diva heartthrob
""",
}
